"""The package's import structure: every module imports (the fast tier's smoke test), the imports between
jaxlaws' modules form no circle, every public module declares ``__all__`` and no module uses another's private
names (docs/ARCHITECTURE.md), and ``import jaxlaws`` leaves pandas and pyarrow alone until they are used."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "jaxlaws"
# Modules that need an optional extra: skipped (not failed) by the smoke test when it is not installed.
EXTRAS = {"jaxlaws.plot": "matplotlib", "jaxlaws.report": "matplotlib"}


def module_files(package: Path = PACKAGE) -> dict[str, Path]:
    """``{dotted module name: file}`` for every ``.py`` file under ``package`` (a package is its ``__init__``)."""
    out = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def import_graph(files: dict[str, Path]) -> dict[str, set[str]]:
    """``{module: the modules of files it imports}``, over every import in each file, function bodies included
    (an import deferred into a function still closes a circle: it only hides it until the call).
    ``from a.b import c`` counts as importing ``a.b.c`` when that is a module, else ``a.b``; relative imports
    resolve inside a package's ``__init__`` and beside a plain module. A parent package's implicit import is
    not counted, nor an import under ``if TYPE_CHECKING:`` (it never runs: annotations only)."""
    known = set(files)
    return {
        name: _imports(name, path.read_text(), known, package=path.name == "__init__.py")
        for name, path in files.items()
    }


def _runtime_nodes(tree: ast.AST):
    """Every node of ``tree`` except the bodies of ``if TYPE_CHECKING:`` blocks."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(name: str, source: str, known: set[str], package: bool) -> set[str]:
    out = set()
    for node in _runtime_nodes(ast.parse(source)):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = name.split(".")[: len(name.split(".")) - node.level + (1 if package else 0)]
                module = ".".join(base + ([node.module] if node.module else []))
            for a in node.names:
                sub = f"{module}.{a.name}"
                out.add(sub if sub in known else module)
    return {m for m in out if m in known and m != name}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles: the strongly connected components of more than one module (Tarjan's algorithm,
    iterative), each sorted, in sorted order."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        found.append(sorted(comp))
    return sorted(found)


def test_cycle_finder_on_small_graphs():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"c", "a"}}) == [["a", "b"], ["c", "d"]]
    assert cycles({"a": {"a"}}) == []  # a module does not import itself


def test_import_graph_reads_every_kind_of_import(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from pkg import a\nfrom . import b\n")
    (pkg / "a.py").write_text("import numpy\ndef f():\n    from pkg.sub.c import x\n")
    (pkg / "b.py").write_text("from .a import f\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "c.py").write_text(
        "from ..b import f\nimport pkg.a\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.sub\n"
    )
    files = module_files(pkg)
    assert set(files) == {"pkg", "pkg.a", "pkg.b", "pkg.sub", "pkg.sub.c"}
    graph = import_graph(files)
    assert graph == {
        "pkg": {"pkg.a", "pkg.b"},
        "pkg.a": {"pkg.sub.c"},
        "pkg.b": {"pkg.a"},
        "pkg.sub": set(),
        "pkg.sub.c": {"pkg.b", "pkg.a"},
    }
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.sub.c"]]


def test_no_import_cycles():
    found = cycles(import_graph(module_files()))
    assert not found, f"import circles: {found}"


def _is_private(name: str) -> bool:
    return any(part.startswith("_") for part in name.split("."))


def _declared_all(name: str, path: Path) -> list[str] | None:
    """The module's ``__all__``: read from the source when it is a literal, else from the imported module."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            try:
                return list(ast.literal_eval(node.value))
            except ValueError:
                return list(importlib.import_module(name).__all__)
    return None


def _top_level_names(path: Path) -> set[str]:
    names = set()
    for node in _runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def test_every_public_module_declares_all():
    """A module whose dotted name has no ``_part`` is public: it lists its public names in ``__all__``, and
    each listed name is defined or imported there (or served by a module ``__getattr__``)."""
    missing, unknown = [], []
    for name, path in module_files().items():
        if _is_private(name):
            continue
        declared = _declared_all(name, path)
        if declared is None:
            missing.append(name)
            continue
        defined = _top_level_names(path)
        unknown += [f"{name}.{n}" for n in declared if n not in defined and "__getattr__" not in defined]
    assert not missing, f"public modules without __all__: {missing}"
    assert not unknown, f"__all__ lists names the module does not define: {unknown}"


def test_no_module_uses_another_modules_private_names():
    """No jaxlaws module imports an underscore name of another module (``from m import _f`` or ``m._f``); a
    private module (``_common.py``) may be imported whole. A name that one public module imports from another
    is in that module's ``__all__``: a name used outside its module is public."""
    files = module_files()
    alls = {n: _declared_all(n, p) for n, p in files.items() if not _is_private(n)}
    found = []
    for name, path in files.items():
        aliases = {}
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module in files and node.module != name:
                for a in node.names:
                    sub = f"{node.module}.{a.name}"
                    if sub in files:
                        aliases[a.asname or a.name] = sub
                    elif a.name.startswith("_"):
                        found.append(f"{name}: from {node.module} import {a.name}")
                    elif node.module in alls and a.name not in (alls[node.module] or ()):
                        found.append(f"{name}: {node.module}.{a.name} is not in its __all__")
            elif isinstance(node, ast.Import):
                aliases.update({a.asname: a.name for a in node.names if a.asname and a.name in files})
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and not _is_private(aliases[node.value.id])
            ):
                found.append(f"{name}: {aliases[node.value.id]}.{node.attr}")
    assert not found, "private names used across modules:\n" + "\n".join(sorted(set(found)))


@pytest.mark.parametrize("name", sorted(module_files()))
def test_every_module_imports(name):
    extra = next((e for prefix, e in EXTRAS.items() if name == prefix or name.startswith(prefix + ".")), None)
    if extra is not None:
        pytest.importorskip(extra)
    importlib.import_module(name)


def test_import_jaxlaws_leaves_pandas_and_pyarrow_out():
    code = (
        "import sys, jaxlaws; jaxlaws.fit, jaxlaws.laws.log_linear; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'pandas', 'pyarrow'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]", out.stdout
