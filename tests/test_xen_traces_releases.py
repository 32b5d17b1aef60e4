"""`run --xen V` against the runtime traces each real release ran (tests/data/runtime).

The runtime cases are recorded like the boot corpus (conformance/corpus.py): CASE.json
and CASE.run.json are Xen 4.17's, releases/V/ holds a release's own recording where it
differs, releases/index.json says which release produced which.  Every call's rc, the
port it got, its observable changes, and the initial and final states must agree.
With EVTCHN_SPEC_XEN=1 the vCPU case is also run again on the real 4.17 (--compare).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evtchn_spec.cli import main as cli_main
from evtchn_spec.conformance import corpus
from evtchn_spec.grammar.dts import parse_dts
from evtchn_spec.grammar.tree import Tree
from evtchn_spec.oracle.compare import run_differences
from evtchn_spec.refimpl.boot import boot
from evtchn_spec.refimpl.config import Config, dom0_max_vcpus, host_cpus, xen_profile
from evtchn_spec.refimpl.runtime import load_trace, run

RUNTIME = Path(__file__).resolve().parent / "data" / "runtime"
INDEX = corpus.load_index(RUNTIME)
PAIRS = sorted((case, release) for case, entry in INDEX["cases"].items()
               for release in entry["base"] + entry["own"])
# Known disagreements: (case, release) -> why (strict xfails).
KNOWN: dict[tuple[str, str], str] = {}


def _run(case: str, release: str) -> dict[str, Any]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        cli_main(["run", str(RUNTIME / f"{case}.dts"), str(RUNTIME / f"{case}.trace.json"),
                  "--format", "json", "--dialect", "xen", "--xen", release])
    doc: dict[str, Any] = json.loads(out.getvalue())
    return doc


@pytest.mark.parametrize("case", ["vcpu1", "status-reset"])
def test_the_cases_are_recorded_on_4_17_4_20_and_4_22(case: str) -> None:
    releases = {r for c, r in PAIRS if c == case}
    assert {"4.17", "4.20", "4.22"} <= releases


def test_status_calls_were_compared_with_what_xen_copied_back() -> None:
    """Every successful status call of the recordings carries Xen's `out`."""
    for case, release in PAIRS:
        doc = corpus.recording(RUNTIME, case, release, run=True)
        assert doc is not None
        for c in doc["calls"]:
            if c["op"] == "status":
                assert ("out" in c) == (c["rc"] == 0), (case, release, c)


@pytest.mark.parametrize("case,release", [
    pytest.param(c, r, marks=pytest.mark.xfail(strict=True, reason=KNOWN[(c, r)]))
    if (c, r) in KNOWN else (c, r) for c, r in PAIRS], ids=[f"{r}-{c}" for c, r in PAIRS])
def test_run_matches_each_release(case: str, release: str) -> None:
    want = corpus.recording(RUNTIME, case, release, run=True)
    assert want is not None and "incomplete" not in want
    assert run_differences(want, _run(case, release)) == []


def test_dom0_vcpu1_exists_only_with_two_cpus() -> None:
    """dom0's bind_ipi on vCPU 1 got a port on every release (QEMU's two CPUs); the same
    tree told dom0_max_vcpus=1 has no vCPU 1, so the reference then says -ENOENT."""
    for c, r in PAIRS:
        if c == "vcpu1":
            want = corpus.recording(RUNTIME, c, r, run=True)
            assert want is not None and want["calls"][1]["rc"] == 0, r
    src = (RUNTIME / "vcpu1.dts").read_text().replace(
        "#size-cells = <1>;\n\t\tmodule@4a000000",
        '#size-cells = <1>;\n\t\txen,xen-bootargs = "dom0_max_vcpus=1";\n'
        "\t\tmodule@4a000000", 1)
    assert "dom0_max_vcpus" in src
    tree = parse_dts(src.encode(), "vcpu1-one.dts")
    res = boot(Config.from_tree(tree, xen_profile("4.17"), "xen"))
    got = run(res, load_trace(str(RUNTIME / "vcpu1.trace.json")))
    assert [c["rc"] for c in got["calls"][:3]] == [-2, -2, -2]


def _tree(cpus: int, bootargs: str | None) -> Tree:
    nodes = "".join(f'cpu@{i} {{ device_type = "cpu"; reg = <{i}>; }};' for i in range(cpus))
    chosen = f'xen,xen-bootargs = "{bootargs}";' if bootargs is not None else ""
    text = (f"/dts-v1/; / {{ cpus {{ #address-cells = <1>; #size-cells = <0>; {nodes} }};"
            f" chosen {{ {chosen} }}; }};")
    return parse_dts(text.encode(), "<vcpus>")


@given(st.integers(1, 300), st.one_of(st.none(), st.integers(0, 300)), st.booleans())
def test_dom0_vcpus_follow_xen(cpus: int, opt: int | None, dash: bool) -> None:
    """dom0_max_vcpus(): the option when non-zero, else the CPUs Xen brought up; never
    above MAX_VIRT_CPUS (128); `-` and `_` are the same in the option's name."""
    name = "dom0-max-vcpus" if dash else "dom0_max_vcpus"
    args = None if opt is None else f"loglvl=all {name}=7 {name}={opt}"
    tree = _tree(cpus, args)
    chosen = tree.root.children.get("chosen")
    assert host_cpus(tree) == cpus
    assert dom0_max_vcpus(tree, chosen) == min(opt or cpus, 128)


@pytest.mark.skipif(os.environ.get("EVTCHN_SPEC_XEN") != "1", reason="EVTCHN_SPEC_XEN=1 boots Xen")
def test_live_vcpu_trace_agrees_on_4_17() -> None:
    """The recorder's own path (longer slots when a loaded host put calls and dumps out
    of order), then the reference on the same trace."""
    from evtchn_spec.conformance.tools import find_tools

    boot_doc, got = corpus.run_case(find_tools("4.17"), RUNTIME / "vcpu1.dts")
    assert boot_doc["outcome"] == "booted" and got is not None
    assert "incomplete" not in got, got["incomplete"]
    assert run_differences(got, _run("vcpu1", "4.17")) == []


def test_status_and_reset_reach_the_guest_with_their_domid() -> None:
    """The runner's trace language: status (port, dom), reset / reset_cont (dom), with
    DOMID_SELF when dom is absent, in the guest's port/arg fields."""
    from evtchn_spec.conformance import qemu, trace

    calls = trace.parse({"calls": [
        {"caller": 1, "op": "status", "args": {"port": 10}},
        {"caller": 1, "op": "status", "args": {"port": 3, "dom": 2}},
        {"caller": 0, "op": "reset", "args": {}},
        {"caller": 0, "op": "reset_cont", "args": {"dom": 1}}]})
    assert [(c.op, c.port, c.arg) for c in calls] == [
        ("status", 10, 0x7FF0), ("status", 3, 2), ("reset", 0, 0x7FF0), ("reset_cont", 0, 1)]
    commands, _ = trace.schedule(calls)
    assert {c.op for cs in commands.values() for c in cs} <= set(qemu.OPS)


@given(st.integers(0, 5), st.integers(0, 0x7FF0), st.integers(0, 4095), st.integers(0, 63),
       st.integers(0, 1))
def test_status_out_has_the_reference_shape(status: int, dom: int, port: int, virq: int,
                                            vcpu: int) -> None:
    """What the guest printed for EVTCHNOP_status becomes the reference's `out`: the
    status name, the union member that status names, and the notify vCPU."""
    from evtchn_spec.conformance import trace

    out = trace.status_out({"st": status, "sdom": dom, "sport": port, "svirq": virq,
                            "svcpu": vcpu})
    names = ["closed", "unbound", "interdomain", "pirq", "virq", "ipi"]
    want: dict[str, Any] = {"status": names[status]}
    if status == 1:
        want["dom"] = dom
    elif status == 2:
        want |= {"dom": dom, "port": port}
    elif status == 4:
        want["virq"] = virq
    want["vcpu"] = vcpu
    assert out == want
