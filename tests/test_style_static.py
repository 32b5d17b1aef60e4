"""The code base stays `mypy --strict` and `ruff` clean: both run as part of the suite.

The import package `evtchn_spec` is spread over several folders (setuptools
package-dir), which mypy cannot follow through the editable-install hook; so the
test lays the package out as a tree of symlinks and checks that.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIRS = {  # as in pyproject.toml [tool.setuptools] package-dir
    "evtchn_spec": "refimpl",
    "evtchn_spec/grammar": "grammar",
    "evtchn_spec/proofs": "proofs",
    "evtchn_spec/conformance": "conformance",
}


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
    res = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "refimpl",
                          "grammar", "proofs", "conformance", "benchmarks", "tests"],
                         cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
