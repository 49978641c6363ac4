r"""The original's fitted mixing-law parameters (``data/aioli/law_results``, decoded from its
``analysis/law_results/**.pkl``) and Skill-It graphs.

Layout. One JSON per original pickle; every dict key was stringified and is converted back here:
numeric keys become ``int`` (steps, seeds) or ``float`` (a parent's first proportion), group names stay
``str``; empty ``{}`` leaves (skeleton slots never fitted) are dropped, and leaves become float64 arrays.

Files under ``law_results/``: ``name``: nesting -> leaf.

* ``arxiv_stackexchange/`` (m=2):

  - ``params_static``: ``[group][5000][seed]`` -> ``[c, k, b]``, ``L = c + exp(k p_own + b)``
  - ``params_dynamic``: ``[group][2000][parent p_arxiv]`` -> ``[k, b]``, ``L^{B+100} = k p_own + b``
  - ``params_{method}_trajectory_opt*``: ``[group][B][seed]`` -> ``[k, b]`` (``A^{t*}`` = diag k)
  - ``params_{method}_trajectory_*matrix*``: ``[B][seed]`` -> ``[b, c_1, c_2]`` (``Ã = b A^t``)

* ``arxiv_books_stackexchange/`` (m=3):

  - ``params_static``: ``[group][5000][seed]`` -> ``[l, b, t_1, t_2]``, ``L = e^l + exp(b + t.p_{<m})``
  - ``params_dynamic``: ``[group][2000][parent p_arxiv]`` -> ``[c, t_1, t_2]``, ``L^{B+100} = c + t.p_{<m}``
  - ``params_{method}_trajectory_opt*``: ``[group][B][seed]`` -> ``[a_1, a_2, a_3]``, ``ΔL = a.p``
  - ``params_{method}_trajectory_*matrix*``: ``[B][seed]`` -> ``[b]`` (``ΔL = b (A^t p)``)

* ``instruction/`` (m=9):

  - ``params``: ``[task][1000][seed 0..3]`` -> ``[l, b, t_1..t_8]``
  - ``params_dynamic`` / ``params_log_dynamic``: ``[task][500][parent p_abductivenli]`` -> ``[c, t_1..t_8]``
    (linear / log-ratio)

Groups: arxiv_stackexchange = (arxiv, stackexchange); arxiv_books_stackexchange = (arxiv, book,
stackexchange); instruction = the 9 tasks in alphabetical order (:data:`INSTRUCTION_TASKS`). Slopes use the
"fitted" sign convention of the original's ``law_results`` (the slopes ``k``, ``t``, ``a`` are negative when
training on a group lowers the loss), the opposite of the paper's :math:`L_i^{t+1} = L_i^t - \sum_j A^t_{ij} p_j`,
where :math:`A` is positive then (Chen et al., 2025).
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "INSTRUCTION_TASKS",
    "SETTINGS",
    "STATIC_FILE",
    "STATIC_STEP",
    "DYNAMIC_STEP",
    "METHODS",
    "TRAJECTORY",
    "load_law_results",
    "static_params",
    "dynamic_params",
    "trajectory_params",
    "skillit_graph",
    "check_setting",
]

INSTRUCTION_TASKS = ("abductivenli", "boolq", "hellaswag", "mathqa", "piqa", "semeval", "squad", "sst2", "xsum")
SETTINGS = {
    "arxiv_stackexchange": ("arxiv", "stackexchange"),
    "arxiv_books_stackexchange": ("arxiv", "book", "stackexchange"),
    "instruction": INSTRUCTION_TASKS,
}
STATIC_FILE = {
    "arxiv_stackexchange": "params_static",
    "arxiv_books_stackexchange": "params_static",
    "instruction": "params",
}
STATIC_STEP = {"arxiv_stackexchange": 5000, "arxiv_books_stackexchange": 5000, "instruction": 1000}
DYNAMIC_STEP = {"arxiv_stackexchange": 2000, "arxiv_books_stackexchange": 2000, "instruction": 500}
METHODS = ("aioli", "doge", "doremi", "skillit")
# (B, R) of the per-method trajectory probes (the original's ``{2,3}_*_parameters.ipynb``); the file suffixes
# differ between settings as the original's pickles do (``_1000`` / ``_500``)
TRAJECTORY = {
    "arxiv_stackexchange": {
        "aioli": (1000, 100, "_1000"),
        "doge": (500, 100, "_500"),
        "doremi": (500, 100, "_500"),
        "skillit": (1000, 100, ""),
    },
    "arxiv_books_stackexchange": {
        "aioli": (1500, 500, "_1500_steps_500"),
        "doge": (1000, 100, "_1000"),
        "doremi": (1000, 500, "_1000_steps_500"),
        "skillit": (1000, 100, "_1000"),
    },
}


def _root() -> Path:
    return Path(str(resources.files("jaxlaws") / "data" / "aioli"))


def _key(k: str) -> int | float | str:
    try:
        return int(k)
    except ValueError:
        pass
    try:
        return float(k)
    except ValueError:
        return k


def _convert(node: Any) -> Any:
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if isinstance(v, dict) and not v:
                continue  # skeleton slot that was never fitted
            v = _convert(v)
            if isinstance(v, dict) and not v:
                continue
            out[_key(k)] = v
        return out
    return np.asarray(node, dtype=np.float64)


@cache
def _load(relpath: str) -> Any:
    rel = relpath if relpath.endswith(".json") else relpath + ".json"
    path = _root() / "law_results" / rel
    if not path.is_file():
        have = sorted(str(p.relative_to(_root() / "law_results")) for p in (_root() / "law_results").rglob("*.json"))
        raise ValueError(f"no bundled law result {rel!r}; available: {have}")
    return _convert(json.loads(path.read_text()))


def load_law_results(relpath: str) -> dict:
    """Load ``law_results/<relpath>[.json]`` as nested dicts (int/float keys, float64 array leaves).

    Args:
      relpath: the path under the bundled ``law_results/``.

    Returns:
      A fresh copy of the nesting (arrays are shared read-only views of a cached load).
    """

    def copy(n):
        return {k: copy(v) for k, v in n.items()} if isinstance(n, dict) else n

    return copy(_load(relpath))


def check_setting(setting: str) -> tuple[str, ...]:
    """The group names of the original's ``setting`` (a key of :data:`SETTINGS`); ``ValueError`` if unknown."""
    if setting not in SETTINGS:
        raise ValueError(f"unknown setting {setting!r}; expected one of {list(SETTINGS)}")
    return SETTINGS[setting]


def static_params(setting: str, step: int | None = None) -> dict[str, dict[int, np.ndarray]]:
    """``[group][seed] -> params`` of the static law at ``step`` (default: the fitted final step).

    Args:
      setting: a key of :data:`SETTINGS`.
      step: the fitted step (default the final one).

    Returns:
      ``{group: {seed: (P,)}}``.
    """
    check_setting(setting)
    step = STATIC_STEP[setting] if step is None else step
    d = load_law_results(f"{setting}/{STATIC_FILE[setting]}")
    try:
        return {g: d[g][step] for g in d}
    except KeyError as e:
        raise ValueError(f"{setting}: no static fits at step {step}") from e


def dynamic_params(setting: str, log_ratio: bool = False) -> dict[str, dict[float, np.ndarray]]:
    """``[group][parent first proportion] -> params`` of the dynamic law (instruction: optionally log-ratio).

    Args:
      setting: a key of :data:`SETTINGS`.
      log_ratio: (instruction) the log-ratio law's fits.

    Returns:
      ``{group: {parent's first proportion: (P,)}}``.
    """
    check_setting(setting)
    if log_ratio and setting != "instruction":
        raise ValueError("log-ratio dynamic parameters exist only for setting 'instruction'")
    d = load_law_results(f"{setting}/{'params_log_dynamic' if log_ratio else 'params_dynamic'}")
    step = DYNAMIC_STEP[setting]
    return {g: d[g][step] for g in d}


def trajectory_params(
    setting: str, method: str
) -> tuple[dict[str, dict[int, np.ndarray]], dict[int, np.ndarray], int, int]:
    """A method probe's fits: ``(opt[group][seed], matrix_fit[seed], B, R)``.

    ``opt`` are the ``A^{t*}`` rows (m=2: ``[k, b]``; m=3: ``[a_1, a_2, a_3]``), ``matrix_fit`` the scale fit
    of ``Ã = b A^t`` (m=2: ``[b, c_1, c_2]``; m=3: ``[b]``).

    Args:
      setting: a key of :data:`SETTINGS`.
      method: ``aioli``, ``doge``, ``doremi`` or ``skillit``.

    Returns:
      ``(opt, matrix_fit, B, R)``: ``opt[group][seed]``, ``matrix_fit[seed]``, the break step and the steps run.
    """
    if setting not in TRAJECTORY:
        raise ValueError(f"no method trajectories for setting {setting!r}; expected one of {list(TRAJECTORY)}")
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {METHODS}")
    b, r, suffix = TRAJECTORY[setting][method]
    opt = load_law_results(f"{setting}/params_{method}_trajectory_opt{suffix}")
    mat = load_law_results(f"{setting}/params_{method}_trajectory_{method}_matrix{suffix}")
    return {g: opt[g][b] for g in opt}, mat[b], b, r


def skillit_graph(groups: tuple[str, ...] | list[str], seed: int) -> np.ndarray:
    """The bundled normalised Skill-It graph ``G`` (rows = trained group, columns = evaluated group), (m, m).

    ``groups`` must be ``("arxiv", "stackexchange")`` or ``("arxiv", "book", "stackexchange")``.

    Args:
      groups: the groups, in order.
      seed: the training seed.

    Returns:
      ``(m, m)`` the graph.
    """
    name = "_".join(groups)
    path = _root() / "skillit_graphs" / f"slimpj_{name}_normalized_seed_{seed}.json"
    if not path.is_file():
        raise ValueError(f"no bundled Skill-It graph for groups {list(groups)} seed {seed} ({path.name})")
    g = np.asarray(json.loads(path.read_text()), dtype=np.float64)
    if g.shape != (len(groups), len(groups)):
        raise ValueError(f"{path.name}: expected a {len(groups)}x{len(groups)} graph, got {g.shape}")
    return g
