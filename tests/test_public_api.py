"""The public surface in one style (docs/ARCHITECTURE.md): every function a package exports says what it
computes and has ``Args:`` and ``Returns:`` sections, every exported class documents its fields, and no
docstring in the library cites documents the repository does not ship or carries machine loads."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from pathlib import Path

import pytest

PACKAGES = [
    "jaxlaws",
    "jaxlaws.laws",
    "jaxlaws.fitting",
    "jaxlaws.analysis",
    "jaxlaws.sweeps",
    "jaxlaws.mixing",
    "jaxlaws.report",
    "jaxlaws.train",
    "jaxlaws.train.methods",
]
OPTIONAL = {"jaxlaws.plot": "matplotlib"}
PACKAGE = Path(__file__).resolve().parent.parent / "jaxlaws"


def exported(package: str) -> list[tuple[str, object]]:
    """``(name, object)`` of the functions and classes in ``package.__all__`` (each object once)."""
    mod = importlib.import_module(package)
    return [
        (f"{package}.{n}", obj)
        for n in mod.__all__
        if inspect.isfunction(obj := getattr(mod, n)) or inspect.isclass(obj)
    ]


def style_problems(name: str, obj: object) -> list[str]:
    doc = inspect.getdoc(obj) or ""
    if not doc.strip():
        return [f"{name}: no docstring"]
    if inspect.isclass(obj):
        if issubclass(obj, BaseException) or not _fields(obj):
            return []
        return [] if "Attributes:" in doc or "Args:" in doc else [f"{name}: no Attributes: section"]
    out = []
    params = [p for p in inspect.signature(obj).parameters if p not in ("self", "cls")]
    if params and "Args:" not in doc:
        out.append(f"{name}: no Args: section")
    if "Returns:" not in doc:
        out.append(f"{name}: no Returns: section")
    return out


def _fields(cls: type) -> list[str]:
    """The declared fields of a dataclass or NamedTuple (what an Attributes: section lists)."""
    return list(getattr(cls, "__dataclass_fields__", None) or getattr(cls, "_fields", ()))


@pytest.mark.parametrize("package", PACKAGES + sorted(OPTIONAL))
def test_exported_names_are_documented_in_one_style(package):
    if package in OPTIONAL:
        pytest.importorskip(OPTIONAL[package])
    problems = [p for name, obj in exported(package) for p in style_problems(name, obj)]
    assert not problems, "\n".join(problems)


def test_style_check_catches_a_bare_function():
    def bare(x):
        """Something."""

    def good(x):
        """Something.

        Args:
          x: a thing.

        Returns:
          Another.
        """

    assert style_problems("bare", bare) == ["bare: no Args: section", "bare: no Returns: section"]
    assert style_problems("good", good) == []


# documents the repository does not ship, and benchmark conditions that belong in benchmarks/RESULTS.md
FORBIDDEN = re.compile(r"spec section|spec \d|issue \d|\bEPYC\b|at load ~?\d|load ~\d", re.IGNORECASE)


def test_docstrings_cite_nothing_outside_the_repository():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in [tree, *ast.walk(tree)]:
            if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                doc = ast.get_docstring(node) or ""
                if m := FORBIDDEN.search(doc):
                    found.append(f"{path.relative_to(PACKAGE.parent)}:{getattr(node, 'lineno', 1)}: {m.group(0)!r}")
    assert not found, "\n".join(found)
