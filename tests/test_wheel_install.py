"""The wheel is the product: built from this checkout as a user builds it, installed
into a new virtual environment (its dependencies from the package index), and run
from there, away from the checkout. `check` and `prove` work, and `vectors` writes
the same vectors as the checkout (same index.json, so the same hashes), because the
case data travels in the wheel as the package `evtchn_spec.cases`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "dom0less-three-domus.dts"
# what a build never needs, and what would make the copy slow or stale
SKIP = shutil.ignore_patterns(".git", ".venv", ".hypothesis", ".pytest_cache", ".mypy_cache",
                              ".ruff_cache", "__pycache__", "build", "dist", "*.egg-info",
                              "out")
DATA_FOLDERS = ("rules", "xen", "runtime", "boot")  # pyproject.toml: evtchn_spec.cases.*


def _run(argv: list[str | Path], cwd: Path,
         env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    res = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, (argv, res.returncode, res.stdout[-2000:], res.stderr[-2000:])
    return res


def _wheel_names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as z:
        return set(z.namelist())


def test_wheel_installs_into_a_new_venv_and_writes_the_checkouts_vectors(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONNOUSERSITE"] = "1"
    # The checkout's vectors (written while the wheel builds) and, at the same moment,
    # the copy the wheel is built from (setuptools writes build/ and *.egg-info next
    # to its sources): both read the same files.
    checkout = tmp_path / "checkout-vectors"
    with subprocess.Popen([sys.executable, "-m", "evtchn_spec.cli", "vectors", str(checkout)],
                          cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True) as writing:
        src = tmp_path / "src"
        shutil.copytree(ROOT, src, ignore=SKIP)
        dist = tmp_path / "dist"
        _run([sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check",
              "--no-deps", "-w", dist, src], tmp_path, env)
        _out, err = writing.communicate(timeout=300)
    assert writing.returncode == 0, err
    (wheel,) = dist.glob("evtchn_spec-*.whl")

    names = _wheel_names(wheel)
    cases = {n.removeprefix("evtchn_spec/cases/") for n in names
             if n.startswith("evtchn_spec/cases/")}
    assert {c.split("/")[0] for c in cases} == {"__init__.py", *DATA_FOLDERS}
    for folder in DATA_FOLDERS:
        shipped = {c.split("/", 1)[1] for c in cases if c.startswith(f"{folder}/")}
        on_disk = {p.name for p in (src / "tests" / "data" / folder).iterdir()
                   if p.suffix in (".dts", ".json", ".toml", ".md")}
        assert shipped == on_disk, (folder, sorted(on_disk ^ shipped))
    assert not any(n.startswith("tests/") for n in names)  # only the data, as evtchn_spec.cases

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], tmp_path, env)
    py, exe = venv / "bin" / "python", venv / "bin" / "evtchn-spec"
    _run([sys.executable, "-m", "pip", "--python", py, "install", "-q",
          "--disable-pip-version-check", wheel], tmp_path, env)

    work = tmp_path / "elsewhere"  # not the checkout: nothing can come from there
    work.mkdir()
    where = _run([py, "-c", "import evtchn_spec, importlib.resources as r; "
                  "print(evtchn_spec.__file__); print(r.files('evtchn_spec.cases'))"],
                 work, env).stdout.split()
    site = venv / "lib"
    assert all(Path(p).is_relative_to(site) for p in where), where

    installed = work / "vectors"
    # the longest step runs while the others do
    with subprocess.Popen([str(exe), "vectors", str(installed)], cwd=work, env=env,
                          stderr=subprocess.PIPE, text=True) as writing:
        res = _run([exe, "check", EXAMPLE], work, env)
        assert res.returncode == 0 and "0 error(s), 0 warning(s)" in res.stdout, res.stdout
        res = _run([exe, "prove", EXAMPLE], work, env)
        assert res.returncode == 0 and res.stdout.rstrip().endswith("result: proved"), \
            res.stdout
        _out, err = writing.communicate(timeout=300)
    assert writing.returncode == 0, err
    ours = json.loads((checkout / "index.json").read_text())
    assert json.loads((installed / "index.json").read_text()) == ours
    assert set(ours["suites"]) == {"random", "rules", "runtime", "xen"}
    assert ours["suites"]["random"] == 100 and all(ours["suites"].values())
