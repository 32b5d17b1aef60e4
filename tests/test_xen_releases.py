"""Every Xen release booted for real (`evtchn-spec xen --xen V`, `--xen-image PATH`).

Live part (EVTCHN_SPEC_XEN=1): parametrised over the releases whose hypervisor is in
the cache; 4.17 and 4.20 (Debian's packages, conformance/install.sh) must be there.
With EVTCHN_SPEC_XEN_SRC (a directory of Xen source tarballs) every tarball is
built first with conformance/build-xen.sh (instant when its build is cached).
Each release boots, names itself in its banner, runs SILO, and gives on the cases
that separate releases (tests/data/xen/releases/index.json) exactly its
recording; EVTCHN_SPEC_XEN_FULL=1 runs every case on every release.

The other tests need no QEMU: which cache entry each release is, the banner and
XSM parsing, the nearest modelled release of a banner version.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from evtchn_spec.conformance import corpus, report
from evtchn_spec.conformance.cli import main as xen_main
from evtchn_spec.conformance.cli import nearest_release
from evtchn_spec.conformance.compare import differences, run_differences
from evtchn_spec.conformance.tools import (
    BUILD_SCRIPT,
    RELEASES,
    XEN_SRC_ENV,
    ToolsMissing,
    available_releases,
    find_hypervisor,
    find_tools,
    release_build_dir,
)

LIVE = os.environ.get("EVTCHN_SPEC_XEN") == "1"
FULL = os.environ.get("EVTCHN_SPEC_XEN_FULL") == "1"
DATA = Path(__file__).resolve().parent / "data" / "xen"
live = pytest.mark.skipif(not LIVE, reason="live Xen runs need EVTCHN_SPEC_XEN=1")


def _build_sources() -> None:
    """Build every tarball of $EVTCHN_SPEC_XEN_SRC (cached builds return at once)."""
    src = os.environ.get(XEN_SRC_ENV)
    if not (LIVE and src):
        return
    for tarball in sorted(Path(src).glob("xen-*.tar.*")):
        proc = subprocess.run(["sh", str(BUILD_SCRIPT), str(tarball)], capture_output=True,
                              text=True, check=False, timeout=3600)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr.strip() or f"building {tarball.name} failed")


_build_sources()
PRESENT = available_releases() if LIVE else []


def _xen(*argv: str) -> tuple[int, dict[str, Any]]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = xen_main(list(argv))
    doc: dict[str, Any] = json.loads(out.getvalue())
    return rc, doc


def _separating_cases() -> list[str]:
    """The cases on which some release has a recording of its own."""
    index = corpus.load_index(DATA)
    return sorted(c for c, e in index["cases"].items() if e.get("own"))


# -- without QEMU ---------------------------------------------------------------------

@pytest.mark.parametrize("version,release", [
    ("4.17.7", "4.17"), ("4.20.5-pre", "4.20"), ("4.22.0", "4.22"), ("4.21.2", "4.21"),
    ("4.23-unstable", "master"), ("4.30.1", "master"), ("4.16.5", "4.17"),
])
def test_nearest_release(version: str, release: str) -> None:
    got, note = nearest_release(version)
    assert got == release
    assert (note is None) == (version.split(".")[:2] == release.split(".")[:2])


def test_banner_and_xsm_are_read_from_the_console() -> None:
    console = ["(XEN) Xen version 4.22.0 (@) (aarch64-linux-gnu-gcc) debug=n today",
               "(XEN) XSM Framework v1.0.1 initialized",
               "(XEN) Initialising XSM SILO mode", "(XEN) Using scheduler: credit2"]
    assert report.banner_version(console) == "4.22.0"
    assert report.xsm_policy(console) == "silo"
    assert report.xsm_policy([console[0], console[1], console[3]]) == "dummy"
    assert report.xsm_policy([console[0], console[3]]) == "none"
    assert report.xsm_policy(console[:1]) == "unknown"
    assert report.xsm_policy([console[1], "(XEN) Flask:  Initializing."]) == "flask"


def test_missing_release_says_how_to_get_it(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVTCHN_SPEC_CACHE", str(tmp_path))
    for release in RELEASES:
        with pytest.raises(ToolsMissing) as exc:
            find_hypervisor(release)
        msg = str(exc.value)
        assert "\n" not in msg
        assert ("install.sh" in msg) == (release in ("4.17", "4.20")), msg
        assert ("build-xen.sh" in msg) == (release not in ("4.17", "4.20")), msg


def test_the_newest_point_release_build_is_taken(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVTCHN_SPEC_CACHE", str(tmp_path))
    for name in ("4.21.1", "4.21.10", "4.21.2", "4.210.0", "master"):
        (tmp_path / "xen-builds" / name).mkdir(parents=True)
        (tmp_path / "xen-builds" / name / "xen").write_bytes(b"x")
        (tmp_path / "xen-builds" / name / "VERSION").write_text(name + "\n")
    d = release_build_dir("4.21")
    assert d is not None and d.name == "4.21.10"
    assert find_hypervisor("4.21")[1] == "4.21.10"
    assert find_hypervisor("master")[2] == "build"
    assert release_build_dir("4.22") is None


def test_an_unknown_release_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert xen_main([str(DATA / "pair-basic.dts"), "--xen", "4.9"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "4.9" in err


# -- live -------------------------------------------------------------------------------

@live
def test_debian_releases_are_present() -> None:
    assert "4.17" in PRESENT and "4.20" in PRESENT, PRESENT


@live
@pytest.mark.parametrize("release", PRESENT)
def test_release_boots_and_names_itself(release: str) -> None:
    rc, doc = _xen(str(DATA / "xenstore-dom0.dts"), "--xen", release, "--compare")
    build = doc["xen"]["observed"]["build"]
    assert build["release"] == release
    assert nearest_release(build["banner_version"])[0] == release, build
    assert build["xsm"] == "silo"
    assert doc["reference_release"] == release
    assert doc["differences"] == [], doc["differences"]
    assert rc == 0


@live
@pytest.mark.parametrize("release", [r for r in PRESENT if r != "4.17"])
def test_own_image_is_compared_with_its_release(release: str) -> None:
    image = find_hypervisor(release)[0]
    rc, doc = _xen(str(DATA / "pair-basic.dts"), "--xen-image", str(image), "--compare")
    build = doc["xen"]["observed"]["build"]
    assert build["source"] == "image"
    assert doc["reference_release"] == release == build["release"]
    assert doc["differences"] == []
    assert rc == 0


def _live_cases(release: str) -> list[str]:
    if FULL:
        return sorted(p.stem for p in DATA.glob("*.dts"))
    return _separating_cases()


@live
@pytest.mark.parametrize("release,case", [(r, c) for r in PRESENT if r != "4.17"
                                          for c in _live_cases(r)])
def test_release_gives_its_recording(release: str, case: str) -> None:
    want = corpus.recording(DATA, case, release)
    assert want is not None, f"{case} was not recorded on {release}"
    boot, run = corpus.run_case(find_tools(release), DATA / f"{case}.dts")
    assert differences(boot, want) == []
    if run is not None:
        want_run = corpus.recording(DATA, case, release, run=True)
        assert want_run is not None
        assert run_differences(run, want_run) == []
