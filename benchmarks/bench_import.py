"""``import jaxlaws``: the time it takes, and whether it pulls in pandas/pyarrow, now and at an earlier commit.

The baseline is the same package at ``--before`` (default: the commit before the analysis and sweep subpackages
became lazy attributes of ``jaxlaws``), checked out with ``git worktree add`` into a temporary folder and
imported from there by the same interpreter. Each timing is a fresh ``python -c "import jaxlaws"`` process
(median of ``--repeat``, interleaved so that machine load hits both alike), plus the import's own cumulative
time from ``python -X importtime`` (the interpreter's start-up excluded).

Usage: ``python benchmarks/bench_import.py [--before a9cdbe9] [--repeat 7]``
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROBE = (
    "import sys, jaxlaws; print(jaxlaws.__file__); "
    "print(' '.join(sorted({m.split('.')[0] for m in sys.modules} & {'pandas', 'pyarrow', 'flax'})))"
)


def run(source: Path, *args: str) -> subprocess.CompletedProcess:
    # the checkout first on the path (before the editable install's finder), the working directory outside it
    env = {**os.environ, "PYTHONPATH": str(source), "JAX_PLATFORMS": "cpu"}
    return subprocess.run(
        [sys.executable, *args], env=env, cwd=tempfile.gettempdir(), capture_output=True, text=True, check=True
    )


def probe(source: Path) -> tuple[str, str]:
    """Where ``jaxlaws`` was imported from, and which of pandas, pyarrow and flax the import loaded."""
    lines = run(source, "-c", PROBE).stdout.splitlines()
    return lines[0], (lines[1] if len(lines) > 1 else "")


def wall(source: Path) -> float:
    t = time.perf_counter()
    run(source, "-c", "import jaxlaws")
    return time.perf_counter() - t


def importtime(source: Path) -> float:
    """Seconds ``-X importtime`` attributes to ``jaxlaws`` cumulatively (everything it imported)."""
    err = run(source, "-X", "importtime", "-c", "import jaxlaws").stderr
    rows = [line.split("|") for line in err.splitlines() if line.startswith("import time:")]
    return max(int(r[1]) for r in rows if r[2].strip() == "jaxlaws") / 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", default="a9cdbe9", help="the baseline commit")
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="jaxlaws-before-") as tmp:
        before = Path(tmp) / "checkout"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(before), args.before], check=True
        )
        try:
            sources = {"before": before, "now": ROOT}
            for name, src in sources.items():
                where, loaded = probe(src)
                assert Path(where).is_relative_to(src), f"{name}: imported {where}, not from {src}"
                print(f"{name:6s} jaxlaws from {Path(where).parent}; the import loads: {loaded or 'none of them'}")
            for src in sources.values():  # warm the file system cache and the bytecode of both
                wall(src)
            times = {name: {"wall": [], "importtime": []} for name in sources}
            for _ in range(args.repeat):
                for name, src in sources.items():
                    times[name]["wall"].append(wall(src))
                    times[name]["importtime"].append(importtime(src))
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(before)], check=True)
    load = os.getloadavg()
    print(
        f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load {load[0]:.1f} "
        f"{load[1]:.1f} {load[2]:.1f}; median of {args.repeat} fresh processes"
    )
    print(f"{'':8s}{'process wall (s)':>18s}{'-X importtime (s)':>20s}")
    med = {n: {k: statistics.median(v) for k, v in t.items()} for n, t in times.items()}
    for name, m in med.items():
        print(f"{name:8s}{m['wall']:18.2f}{m['importtime']:20.2f}")
    print(
        f"{'ratio':8s}{med['before']['wall'] / med['now']['wall']:17.2f}x"
        f"{med['before']['importtime'] / med['now']['importtime']:19.2f}x   (before / now)"
    )


if __name__ == "__main__":
    main()
