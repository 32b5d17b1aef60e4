"""`run` against the traces recorded on the real Xen 4.17 (tests/data/xen/*.run.json).

The conformance runner (conformance/trace.py) records, per call, the rc, the port
a bind got, and the changes it saw in every guest's table, in the same
{"dom", "port", "field", "from", "to"} shape as `run`, for the fields a guest can
observe through EVTCHNOP_status and shared_info: status, remote_dom, remote_port,
pending, masked. The reference must agree on all of them, call by call.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from evtchn_spec.grammar import load
from evtchn_spec.refimpl.boot import boot
from evtchn_spec.refimpl.config import Config, xen_profile
from evtchn_spec.refimpl.runtime import load_trace, run

DATA = Path(__file__).parent / "data" / "xen"
# tests/data/runtime: traces recorded the same way for the run-time rules (see each .dts comment)
RUNTIME = Path(__file__).parent / "data" / "runtime"
CASE_DIRS = {p.name.removesuffix(".run.json"): p.parent
             for folder in (DATA, RUNTIME) for p in folder.glob("*.run.json")}
CASES = sorted(CASE_DIRS)
XEN_FIELDS = ("status", "remote_dom", "remote_port", "pending", "masked")


def reference(case: str) -> dict[str, Any]:
    folder = CASE_DIRS[case]
    cfg = Config.from_tree(load(str(folder / f"{case}.dts")), xen_profile("4.17"), "xen")
    return run(boot(cfg), load_trace(str(folder / f"{case}.trace.json")))


def observable(changes: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """The adapter: only per-port changes of the fields the real guest reports."""
    return sorted((c["dom"], c["port"], c["field"], json.dumps(c["from"]), json.dumps(c["to"]))
                  for c in changes if "port" in c and c["field"] in XEN_FIELDS)


def ports(state: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return {d: [{k: p.get(k) for k in ("port", *XEN_FIELDS, "static")} for p in v["ports"]]
            for d, v in state["domains"].items()}


def test_there_are_recorded_traces() -> None:
    assert len(CASES) >= 8


@pytest.mark.parametrize("case", CASES)
def test_every_call_agrees_with_real_xen(case: str) -> None:
    xen = json.loads((CASE_DIRS[case] / f"{case}.run.json").read_text())
    ref = reference(case)
    assert "incomplete" not in xen
    assert len(ref["calls"]) == len(xen["calls"])
    for i, (x, r) in enumerate(zip(xen["calls"], ref["calls"], strict=True)):
        where = f"{case} call {i} ({x['op']} by d{x['caller']} {x['args']})"
        assert r["rc"] == x["rc"], where
        assert r.get("port") == x.get("port"), where
        assert observable(r["changes"]) == observable(x["changes"]), where


@pytest.mark.parametrize("case", CASES)
def test_initial_and_final_states_agree_with_real_xen(case: str) -> None:
    xen = json.loads((CASE_DIRS[case] / f"{case}.run.json").read_text())
    ref = reference(case)
    assert ports(ref["initial"]) == ports(xen["initial"])
    assert ports(ref["final"]) == ports(xen["final"])


BOOTS = sorted(p.name.removesuffix(".json") for p in DATA.glob("*.json")
               if not p.name.endswith((".run.json", ".trace.json"))
               and json.loads(p.read_text()).get("outcome") == "booted")


@pytest.mark.parametrize("case", BOOTS)
def test_initial_upcall_flags_agree_with_real_xen(case: str) -> None:
    """vCPU 0's evtchn_upcall_pending and selector as each guest first read them."""
    xen = json.loads((DATA / f"{case}.json").read_text())
    cfg = Config.from_tree(load(str(DATA / f"{case}.dts")), xen_profile("4.17"), "xen")
    ref = run(boot(cfg), [])
    for domid, g in xen["observed"]["guests"].items():
        v0 = ref["initial"]["domains"][domid]["vcpus"]["0"]
        assert v0["upcall_pending"] == bool(g["upcall_pending"]), (case, domid)
        assert v0["pending_sel"] == g["pending_sel"], (case, domid)
