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
from evtchn_spec.oracle.compare import differences, run_differences

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
    """The cases on which some release's boot differs from 4.17's in the contract
    (outcome, error, panic, ports), and the ones made to show what differs beyond it
    (dom0's device tree): about 30, so the live runs of six releases take minutes.
    Most dom0 cases have recordings of their own from 4.18 on only because dom0's
    device tree lost the evtchn nodes; dom0-dt-* check that."""
    index = corpus.load_index(DATA)
    out = []
    for case, entry in index["cases"].items():
        base = corpus.recording(DATA, case, corpus.BASE_RELEASE)
        if base is None:
            continue
        own = [corpus.recording(DATA, case, r) for r in entry.get("own", [])]
        if case.startswith("dom0-dt-") or any(
                doc is not None and differences(doc, base) for doc in own):
            out.append(case)
    return sorted(out)


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


# -- any tree a user has: renumbered phandles, QEMU's own machine ---------------------

def _qemu_like() -> Any:
    from evtchn_spec.conformance.fdt import Fdt, FdtNode, u32s

    clk = FdtNode("apb-pclk", [("phandle", u32s(0x8000))])
    cpus = FdtNode("cpus", [], [FdtNode("cpu@0", [("phandle", u32s(0x8001))])])
    intc = FdtNode("intc@8000000", [("phandle", u32s(0x8002))])
    root = FdtNode("", [("interrupt-parent", u32s(0x8002)), ("#address-cells", u32s(2)),
                        ("#size-cells", u32s(2))], [clk, cpus, intc, FdtNode("chosen")])
    return Fdt(root)


def _user_tree(phandles: list[int], peers: list[int]) -> Any:
    """Two domains; endpoint i has phandle PHANDLES[i] and points at endpoint PEERS[i]."""
    from evtchn_spec.conformance.fdt import Fdt, FdtNode, string, u32s

    doms = []
    for d in range(2):
        eps = [FdtNode(f"evtchn@{i}", [("compatible", string("xen,evtchn-v1")),
                                       ("phandle", u32s(phandles[i])),
                                       ("xen,evtchn", u32s(10 + i, phandles[peers[i]]))])
               for i in range(len(phandles)) if i % 2 == d]
        doms.append(FdtNode(f"domU{d + 1}", [("compatible", string("xen,domain")),
                                             ("cpus", u32s(1)), ("memory", u32s(0, 0x10000))],
                            eps))
    chosen = FdtNode("chosen", [("#address-cells", u32s(1)), ("#size-cells", u32s(1))], doms)
    return Fdt(FdtNode("", [("#address-cells", u32s(2))], [chosen]))


def _first_by_phandle(root: Any) -> dict[int, str]:
    out: dict[int, str] = {}
    for path, node in root.walk():
        v = node.u32("phandle")
        if v is not None and v not in out:
            out[v] = path
    return out


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([1, 2, 3, 0x7fff, 0x8000, 0x8001, 0x8002, 0x8003, 0x9000]),
                min_size=2, max_size=6, unique=True).flatmap(
    lambda phs: st.tuples(st.just(phs), st.lists(st.integers(0, len(phs) - 1),
                                                 min_size=len(phs), max_size=len(phs)))))
def test_renumbering_keeps_every_link(drawn: tuple[list[int], list[int]]) -> None:
    """Whatever phandles the user chose, every xen,evtchn of the merged tree names the
    node it named in the user's tree, no taken node shares a phandle with QEMU's, and
    the user's view (what the reference runs on) is the renumbered tree."""
    from evtchn_spec.conformance import dtbuild

    phandles, peers = drawn
    user = _user_tree(phandles, peers)
    before = {path: node.prop("xen,evtchn") for path, node in user.root.walk()
              if node.prop("xen,evtchn") is not None}
    by_ph_before = _first_by_phandle(user.root)
    targets = {path: by_ph_before[int.from_bytes(v[4:8], "big")] for path, v in before.items()}
    qemu = _qemu_like()
    qemu_ph = {v for _, n in qemu.root.walk() if (v := n.u32("phandle")) is not None}
    plan = dtbuild.build(user, qemu, dom0=False, add_kernels=True)
    merged = plan.tree.root
    chosen = merged.child("chosen")
    assert chosen is not None
    taken_ph = [v for _, n in chosen.walk() if (v := n.u32("phandle")) is not None]
    assert not set(taken_ph) & qemu_ph
    by_ph = _first_by_phandle(merged)
    for path, node in merged.walk():
        value = node.prop("xen,evtchn")
        if value is None:
            continue
        assert by_ph[int.from_bytes(value[4:8], "big")] == targets[path]
    renumbered = sorted(set(phandles) & qemu_ph)
    notes = [n for n in plan.notes if n.startswith("phandle ")]
    assert len(notes) == len(renumbered)
    assert plan.user_view is not None
    view_ph = {v for _, n in plan.user_view.root.walk() if (v := n.u32("phandle")) is not None}
    assert view_ph == set(taken_ph)


def test_a_dumped_qemu_tree_is_qemus_machine() -> None:
    """The whole of QEMU's tree with a /chosen: its nodes are QEMU's own, so nothing
    clashes, nothing is renumbered, and no node is reported as not taken."""
    from evtchn_spec.conformance import dtbuild, fdt

    qemu = _qemu_like()
    user = fdt.parse(fdt.serialize(qemu))
    mine = _user_tree([1, 2], [1, 0]).root.child("chosen")
    user.root.children = [c for c in user.root.children if c.name != "chosen"] + [mine]
    plan = dtbuild.build(user, _qemu_like(), dom0=False, add_kernels=True)
    assert plan.notes == []
    assert [d.name for d in plan.domains] == ["domU1", "domU2"]


@live
def test_live_qemu_dump_with_chosen_boots(tmp_path: Path) -> None:
    """QEMU's own dumpdtb plus a /chosen whose phandles clash with QEMU's, given as DTB:
    booted, renumbered (and said so), and the reference agrees."""
    from evtchn_spec.conformance import fdt, qemu

    tools = find_tools("4.17")
    tree = fdt.parse(qemu.dump_qemu_dtb(tools, 1024))
    mine = _user_tree([0x8000, 0x8001], [1, 0]).root.child("chosen")
    assert mine is not None
    for dom in mine.children:
        dom.children.append(fdt.FdtNode("module@0", [
            ("compatible", fdt.string_list("multiboot,kernel", "multiboot,module")),
            ("reg", fdt.u32s(0x4c000000, 0x200000))]))
    tree.root.children = [c for c in tree.root.children if c.name != "chosen"] + [mine]
    path = tmp_path / "virt-with-chosen.dtb"
    path.write_bytes(fdt.serialize(tree))
    rc, doc = _xen(str(path), "--compare")
    assert doc["differences"] == [] and rc == 0, doc
    notes = doc["xen"]["observed"]["notes"]
    assert sum(n.startswith("phandle 0x800") for n in notes) == 2, notes
    ports = doc["xen"]["domains"]["1"]["ports"]
    assert [(p["port"], p["status"], p.get("remote_port")) for p in ports] == [
        (10, "interdomain", 11)]
