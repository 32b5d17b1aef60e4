"""Live runs on the real Xen 4.17 under QEMU (only with EVTCHN_SPEC_XEN=1; CI sets it).

Every case of tests/data/xen/ is booted again and must give exactly the
recorded result (so the recordings stay true to the hypervisor and the runner
stays deterministic), and `evtchn-spec xen --compare` must agree with the
reference.  The whole corpus takes well under a minute: one boot is ~0.2 s of
QEMU TCG, a trace ~0.3 s per call.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest

from evtchn_spec.conformance import corpus
from evtchn_spec.conformance.cli import main as xen_main
from evtchn_spec.conformance.tools import find_tools
from evtchn_spec.oracle.compare import differences, run_differences

LIVE = os.environ.get("EVTCHN_SPEC_XEN") == "1"
pytestmark = pytest.mark.skipif(not LIVE, reason="live Xen runs need EVTCHN_SPEC_XEN=1 "
                                 "(and conformance/install.sh)")

DATA = Path(__file__).resolve().parent / "data" / "xen"
CASES = sorted(DATA.glob("*.dts"))


def _stable(doc: dict[str, Any]) -> dict[str, Any]:
    """Everything but the package version, which Debian may bump, and the build that
    ran (tests/test_xen_releases.py checks that one)."""
    out: dict[str, Any] = json.loads(json.dumps(doc))
    for part in (out, out.get("initial", {})):
        part.get("observed", {}).pop("version", None)
        part.get("observed", {}).pop("build", None)
    return out


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_live_boot_matches_recording(case: Path) -> None:
    boot, run = corpus.run_case(find_tools(), case)
    want = json.loads(case.with_suffix(".json").read_text())
    assert _stable(boot) == _stable(want), differences(boot, want) or (boot, want)
    recorded_run = case.with_name(case.stem + ".run.json")
    if run is not None:
        want_run = json.loads(recorded_run.read_text())
        changed = [(i, a, b) for i, (a, b) in enumerate(zip(run["calls"], want_run["calls"],
                                                            strict=True)) if a != b]
        assert _stable(run) == _stable(want_run), json.dumps(
            {"rc": run_differences(run, want_run), "changed": changed,
             "incomplete": run.get("incomplete")}, indent=1)


def test_cli_compare_agrees(tmp_path: Path) -> None:
    out = io.StringIO()
    log = tmp_path / "console.log"
    with contextlib.redirect_stdout(out):
        rc = xen_main([str(DATA / "xenstore-dom0.dts"), "--compare", "--console", str(log)])
    doc = json.loads(out.getvalue())
    assert doc["differences"] == [], doc
    assert rc == 0
    assert doc["xen"]["domains"]["1"]["ports"][0] == {
        "port": 1, "status": "unbound", "remote_dom": 0, "static": False, "pending": False,
        "masked": False}
    assert "(XEN) Xen version 4.17" in log.read_text()


def test_cli_reports_panic_exactly() -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = xen_main([str(DATA / "port-reused.dts")])
    doc = json.loads(out.getvalue())
    assert rc == 0
    assert doc["outcome"] == "panic"
    assert doc["error"] == "evtchn_alloc_unbound() failure (Error -16) "
    assert doc["panic"] == "Could not set up domains evtchn"


def test_timeout_stops_by_itself() -> None:
    """A run cut short reports 'incomplete' (exit 3) instead of hanging."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = xen_main([str(DATA / "pair-basic.dts"), "--timeout", "0.05"])
    assert rc == 3
    assert json.loads(out.getvalue())["outcome"] == "incomplete"


def test_cli_compare_trace_agrees() -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = xen_main([str(DATA / "loopback-same-domain.dts"), "--trace",
                       str(DATA / "loopback-same-domain.trace.json"), "--compare"])
    doc = json.loads(out.getvalue())
    assert doc["differences"] == [], doc["differences"]
    assert rc == 0
    assert [c["rc"] for c in doc["xen"]["calls"]] == [c["rc"] for c in doc["reference"]["calls"]]
