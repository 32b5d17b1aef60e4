"""The import graph of the package has no cycles, and imports sit at module top.

A cycle hides the real layering (which folder may use which), so the graph is
built from the source, every `import` counted (inside functions and under
TYPE_CHECKING too), and must be acyclic. An import inside a function is allowed
only where it saves a measured start-up cost: the comment just above it says how
much (for example "z3 ... takes 50-70 ms"), or points at the comment that does.
"""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_PKG_DIRS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
    "package-dir"]
FOLDERS = {pkg: ROOT / folder for pkg, folder in _PKG_DIRS.items()
           if not pkg.startswith("evtchn_spec.cases")}
MEASURED = re.compile(r"#.*(\d+(-\d+)? ?ms\b|see \S+\.py)")


def _modules() -> dict[str, Path]:
    mods: dict[str, Path] = {}
    for pkg, folder in FOLDERS.items():
        for path in folder.glob("*.py"):
            mods[pkg if path.stem == "__init__" else f"{pkg}.{path.stem}"] = path
    return mods


MODULES = _modules()


def _package_of(mod: str) -> str:
    return mod if MODULES[mod].stem == "__init__" else mod.rsplit(".", 1)[0]


def _targets(mod: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The project modules an import statement loads (a name imported from a package
    counts as its submodule when there is one)."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        base = node.module or ""
        if node.level:
            pkg = _package_of(mod).split(".")
            pkg = pkg[: len(pkg) - (node.level - 1)]
            base = ".".join(pkg + ([node.module] if node.module else []))
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base
                 for a in node.names]
    out = []
    for name in names:
        while name and name not in MODULES:
            name = name.rpartition(".")[0]
        if name and name != mod:
            out.append(name)
    return out


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for mod, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import | ast.ImportFrom):
                graph[mod].update(_targets(mod, node))
    # a package's __init__ is loaded before any of its submodules: that edge is real,
    # but a submodule importing its own package's __init__ is not a cycle through it
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_package_has_no_import_cycle() -> None:
    assert _cycles(_graph()) == []


# which folders each folder may import (ARCHITECTURE.md, "Layout"); "" is the root
LAYERS = {
    "": set(),
    "grammar": set(),
    "refimpl": {"grammar"},
    "render": {"", "grammar", "refimpl"},
    "proofs": {"grammar", "refimpl"},
    "oracle": {"", "grammar", "refimpl"},
    "conformance": {"grammar", "refimpl", "oracle"},
    "cli": {"", "grammar", "refimpl", "render", "proofs", "oracle", "conformance"},
}


def _folder(mod: str) -> str:
    return mod.split(".")[1] if "." in mod else ""


def test_each_folder_imports_only_the_layers_below_it() -> None:
    assert set(LAYERS) == {_folder(m) for m in MODULES}
    wrong = sorted(f"{a} imports {b}" for a, bs in _graph().items() for b in bs
                   if _folder(b) != _folder(a) and _folder(b) not in LAYERS[_folder(a)])
    assert wrong == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("mod", sorted(MODULES))
def test_imports_inside_functions_say_what_they_save(mod: str) -> None:
    path = MODULES[mod]
    lines = path.read_text().splitlines()
    tree = ast.parse("\n".join(lines))
    bad = []
    for fn in ast.walk(tree):
        if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.Import | ast.ImportFrom):
                # the comment may head a block of such imports
                top = node.lineno - 1
                while top > 0 and re.match(r"\s*(from \S+ import |import |$)", lines[top - 1]):
                    top -= 1
                above = lines[max(0, top - 3): node.lineno]
                if not any(MEASURED.search(line) for line in above):
                    bad.append(f"{path.relative_to(ROOT)}:{node.lineno}: "
                               f"{lines[node.lineno - 1].strip()}")
    assert bad == []
