"""The code base stays `mypy --strict` and `ruff` clean: both run as part of the suite.

Each top-level folder F is the import package `evtchn_spec.F` (setuptools
package-dir in pyproject.toml). mypy finds a module only where its dotted name is
its path, and it cannot follow the editable-install hook; so the test lays the
package out by the same table, as a tree of symlinks made afresh in a temporary
directory, and checks that.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
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
