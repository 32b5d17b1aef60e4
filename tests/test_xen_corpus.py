"""The reference boot and run against what real Xen did (recorded in tests/data/xen/).

Every CASE.dts there was booted on Debian's Xen 4.17 arm64 under QEMU by
`python -m evtchn_spec.conformance.corpus`; CASE.json is what Xen did.  The
reference `boot` (asked for the xen dialect: real Xen knows no other) must
agree on every case.  The live re-run is tests/test_xen_live.py.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pytest

from evtchn_spec.cli import main as cli_main
from evtchn_spec.conformance import corpus
from evtchn_spec.grammar import load
from evtchn_spec.oracle.compare import PORT_FIELDS, differences, run_differences
from evtchn_spec.refimpl.check import check
from evtchn_spec.refimpl.config import Config

DATA = Path(__file__).resolve().parent / "data" / "xen"
CASES = sorted(DATA.glob("*.dts"))
RUNS = sorted(DATA.glob("*.run.json"))


def reference_boot(path: Path) -> dict[str, Any]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        cli_main(["boot", str(path), "--format", "json", "--dialect", "xen"])
    doc: dict[str, Any] = json.loads(out.getvalue())
    return doc


def recorded(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.with_suffix(".json").read_text())
    return doc


def test_corpus_is_there() -> None:
    assert len(CASES) >= 60
    for case in CASES:
        assert case.with_suffix(".json").is_file(), f"{case.name} has no recorded result"


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_reference_matches_real_xen(case: Path) -> None:
    xen = recorded(case)
    ref = reference_boot(case)
    assert differences(xen, ref) == []


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_check_fails_exactly_where_xen_does(case: Path) -> None:
    """check reports an error exactly where Xen panicked or left a channel out."""
    xen = recorded(case)
    cfg = Config.from_tree(load(case))
    res = check(cfg)
    missing = [e for e in cfg.endpoints if id(e.node) not in res.boot.realised]
    assert (res.errors > 0) == (xen["outcome"] == "panic" or bool(missing))


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_recorded_boot_is_well_formed(case: Path) -> None:
    doc = recorded(case)
    assert doc["format"] == 1
    assert doc["outcome"] in ("booted", "panic")
    if doc["outcome"] == "panic":
        assert doc["panic"]
        return
    for domid, dom in doc["domains"].items():
        ports = [p["port"] for p in dom["ports"]]
        assert ports == sorted(set(ports)), "ports listed once each, increasing"
        for p in dom["ports"]:
            assert p["status"] in ("unbound", "interdomain")
            if p["status"] == "interdomain":
                # the peer's port points back at this one
                peer = doc["domains"][str(p["remote_dom"])]
                back = [q for q in peer["ports"] if q["port"] == p["remote_port"]]
                assert back and back[0]["remote_dom"] == int(domid)
                assert back[0]["remote_port"] == p["port"]
        # the guest reported as the domain the runner loaded it for
        guest = doc["observed"]["guests"][domid]
        assert guest["tag"] == guest["tag_expected"]


def _apply(state: dict[str, list[dict[str, Any]]], change: dict[str, Any]) -> None:
    ports = state.setdefault(str(change["dom"]), [])
    found = [p for p in ports if p["port"] == change["port"]]
    if not found:
        entry: dict[str, Any] = {"port": change["port"], "status": "closed", "pending": False,
                                 "masked": False}
        ports.append(entry)
        found = [entry]
    if change["to"] is None:
        found[0].pop(change["field"], None)
    else:
        found[0][change["field"]] = change["to"]


@pytest.mark.parametrize("run", RUNS, ids=[r.name.split(".")[0] for r in RUNS])
def test_recorded_trace_is_consistent(run: Path) -> None:
    """Initial state plus every recorded change gives the recorded final state."""
    doc = json.loads(run.read_text())
    assert "incomplete" not in doc, "every slot was observed in every domain"
    state = {d: [dict(p) for p in v["ports"]] for d, v in doc["initial"]["domains"].items()}
    for call in doc["calls"]:
        assert isinstance(call["rc"], int)
        for change in call["changes"]:
            _apply(state, change)
    for d, ports in state.items():
        live = sorted((p for p in ports if p.get("status") != "closed"), key=lambda p: p["port"])
        final = doc["final"]["domains"][d]["ports"]
        assert [{k: p.get(k) for k in ("port", *PORT_FIELDS[:3], "pending", "masked")}
                for p in live] == \
               [{k: p.get(k) for k in ("port", *PORT_FIELDS[:3], "pending", "masked")}
                for p in final]


def reference_run(case: Path, trace: Path) -> dict[str, Any]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        cli_main(["run", str(case), str(trace), "--format", "json", "--dialect", "xen"])
    doc: dict[str, Any] = json.loads(out.getvalue())
    return doc


@pytest.mark.parametrize("run", RUNS, ids=[r.name.split(".")[0] for r in RUNS])
def test_reference_run_matches_real_xen(run: Path) -> None:
    """Every call's rc, port and observable changes, and the final state, as Xen did them."""
    name = run.name[:-len(".run.json")]
    doc = json.loads(run.read_text())
    ref = reference_run(DATA / f"{name}.dts", DATA / f"{name}.trace.json")
    assert run_differences(doc, ref) == []


# -- every release: the reference `boot --xen V` / `run --xen V` against what V did ------

INDEX = corpus.load_index(DATA)
PAIRS = sorted((case, release) for case, entry in INDEX["cases"].items()
               for release in entry["base"] + entry["own"])
# Known disagreements between the reference and a real release: (case, release) ->
# why.  Each is a strict xfail, so a fix (or a changed recording) shows up.
KNOWN: dict[tuple[str, str], str] = {}


def _ref(case: str, release: str, *, trace: bool = False) -> dict[str, Any]:
    path = DATA / f"{case}.dts"
    sub = ["run", str(path), str(DATA / f"{case}.trace.json")] if trace else ["boot", str(path)]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        cli_main([*sub, "--format", "json", "--dialect", "xen", "--xen", release])
    doc: dict[str, Any] = json.loads(out.getvalue())
    return doc


def test_every_case_is_recorded_on_every_release() -> None:
    cases = {p.stem for p in DATA.glob("*.dts")}
    assert set(INDEX["cases"]) == cases
    for case, entry in INDEX["cases"].items():
        assert sorted(entry["base"] + entry["own"], key=corpus.RELEASES.index) == list(
            INDEX["releases"]), case
    assert {"4.17", "4.20"} <= set(INDEX["releases"])


@pytest.mark.parametrize("case,release", [
    pytest.param(c, r, marks=pytest.mark.xfail(strict=True, reason=KNOWN[(c, r)]))
    if (c, r) in KNOWN else (c, r) for c, r in PAIRS], ids=[f"{r}-{c}" for c, r in PAIRS])
def test_reference_matches_each_release(case: str, release: str) -> None:
    want = corpus.recording(DATA, case, release)
    assert want is not None
    assert differences(want, _ref(case, release)) == []
    want_run = corpus.recording(DATA, case, release, run=True)
    if want_run is not None:
        assert run_differences(want_run, _ref(case, release, trace=True)) == []
