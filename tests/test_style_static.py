"""The code base stays `mypy --strict` and `ruff` clean: both run as part of the suite.

Each top-level folder F is the import package `evtchn_spec.F` (setuptools
package-dir in pyproject.toml). mypy finds a module only where its dotted name is
its path, and it cannot follow the editable-install hook; so the test lays the
package out by the same table, as a tree of symlinks made afresh in a temporary
directory, and checks that.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import tomllib
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIRS = {  # pyproject.toml's package-dir, the code folders only (not the cases)
    pkg.replace(".", "/"): folder for pkg, folder in tomllib.loads(
        (ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"].items()
    if not pkg.startswith("evtchn_spec.cases")}
CODE_FOLDERS = sorted(PACKAGE_DIRS.values())


def _link_tree(dest: Path) -> Path:
    for pkg, folder in PACKAGE_DIRS.items():
        target = dest / pkg
        target.mkdir(parents=True, exist_ok=True)
        for src in (ROOT / folder).rglob("*.py"):
            rel = src.relative_to(ROOT / folder)
            if rel.parts[0] in ("build", "__pycache__"):
                continue
            link = target / rel
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(src, link)
    return dest


def test_mypy_strict_clean(tmp_path: Path) -> None:
    tree = _link_tree(tmp_path / "src")
    cmd = [sys.executable, "-m", "mypy", "--strict", "--no-error-summary",
           "--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(tmp_path / "cache"),
           "-p", "evtchn_spec"]
    res = subprocess.run(cmd, cwd=tree, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    res = subprocess.run([*cmd[:-2], str(ROOT / "benchmarks")], cwd=tree, capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_ruff_clean() -> None:
    res = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", *CODE_FOLDERS,
                          "benchmarks", "tests"],
                         cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def _definitions(tree: ast.Module) -> list[tuple[int, str, int]]:
    """(line, name, uses its own definition makes) of the module-level names, the
    methods and the class fields of one module. A callback a framework finds by name
    (the methods of a lark Transformer, dunders) is not listed."""
    out: list[tuple[int, str, int]] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            out.append((node.lineno, node.name, 0))
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            out += [(node.lineno, t.id, 1) for t in targets if isinstance(t, ast.Name)]
        if not isinstance(node, ast.ClassDef):
            continue
        if any(ast.unparse(b).startswith("Transformer") for b in node.bases):
            continue
        for item in node.body:
            if isinstance(item, ast.FunctionDef):
                out.append((item.lineno, f"{node.name}.{item.name}", 0))
            elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                out.append((item.lineno, f"{node.name}.{item.target.id}", 1))
    return [d for d in out if not d[1].rsplit(".", 1)[-1].startswith("__")]


def _uses(tree: ast.AST) -> Counter[str]:
    """Every name a module mentions: names, attributes, imported names, keyword
    arguments, and identifier-like strings (getattr, JSON keys, argparse dests)."""
    seen: Counter[str] = Counter()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            seen[node.id] += 1
        elif isinstance(node, ast.Attribute):
            seen[node.attr] += 1
        elif isinstance(node, ast.alias):
            seen[node.name.rsplit(".", 1)[-1]] += 1
        elif isinstance(node, ast.keyword) and node.arg:
            seen[node.arg] += 1
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and node.value.isidentifier():
            seen[node.value] += 1
    return seen


def test_no_dead_code() -> None:
    """Every function, class, method, constant and dataclass field of the package is
    used somewhere (the package, its tests or the benchmarks) besides its definition."""
    package = [p for folder in CODE_FOLDERS for p in (ROOT / folder).rglob("*.py")
               if "build" not in p.parts]
    others = [*(ROOT / "tests").glob("*.py"), *(ROOT / "benchmarks").glob("*.py")]
    trees = {p: ast.parse(p.read_text()) for p in package + others}
    uses: Counter[str] = Counter()
    for tree in trees.values():
        uses += _uses(tree)
    dead = [f"{p.relative_to(ROOT)}:{line}: {name}" for p in package
            for line, name, own in _definitions(trees[p])
            if uses[name.rsplit(".", 1)[-1]] <= own]
    assert dead == []
