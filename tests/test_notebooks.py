"""Execute every analysis notebook top to bottom (nbclient, Agg backend) on its small synthetic sweep.

The notebooks run concurrently (each in its own kernel) because most of their time is kernel start-up and
JAX compilation, which overlap well on two cores.
"""

import asyncio
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))
FAMILIES = {"static_m2", "static_m3", "dynamic_m2", "dynamic_m3", "instruction_static", "instruction_dynamic",
            "method_parameters", "measurements"}


def test_notebooks_exist():
    assert FAMILIES <= {p.stem for p in NOTEBOOKS}


async def _run_all(paths, parallel=3):
    gate = asyncio.Semaphore(parallel)

    async def one(path):
        async with gate:
            nb = nbformat.read(path, as_version=4)
            client = NotebookClient(nb, timeout=300, kernel_name="python3",
                                    resources={"metadata": {"path": str(path.parent)}})
            try:
                await client.async_execute()
            except Exception as e:  # report every failing notebook, not just the first
                return path.stem, f"{type(e).__name__}: {str(e)[-2000:]}", nb
            return path.stem, None, nb

    return await asyncio.gather(*(one(p) for p in paths))


def test_notebooks_run(monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    results = asyncio.run(_run_all(NOTEBOOKS))
    failed = {name: err for name, err, _ in results if err}
    assert not failed, failed
    for name, _, nb in results:
        outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
        assert not [o for o in outputs if o.output_type == "error"], name
        kinds = {k for o in outputs for k in o.get("data", {})}
        assert "image/png" in kinds or "text/html" in kinds, f"{name} shows neither a figure nor a table"
