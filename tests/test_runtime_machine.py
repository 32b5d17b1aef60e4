"""Hostile call sequences on random booted systems (hypothesis RuleBasedStateMachine).

Any domain (live, dead, or never created) calls any operation with any argument;
after every step the single-state invariants of spec/semantics.md hold
(`runtime.invariant_violations`) and so do the step properties, checked here on
the observable states before and after the call.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from test_boot_model import System

from evtchn_spec.grammar.errors import Span
from evtchn_spec.refimpl.boot import boot
from evtchn_spec.refimpl.runtime import (
    OPS,
    Call,
    apply,
    boot_peers,
    invariant_violations,
    state_json,
)
from evtchn_spec.refimpl.xen_state import DOMID_SELF

PORT = st.one_of(st.integers(0, 140), st.sampled_from([1023, 1024, 4095, 4096, 0xFFFFFFFF]))
DOM = st.one_of(st.integers(0, 4), st.just(DOMID_SELF), st.just(0xFFFF))
SMALL = st.one_of(st.integers(0, 3), st.just(0xFFFFFFFF))
ARG: dict[str, st.SearchStrategy[int]] = {
    "port": PORT, "remote_port": PORT, "dom": DOM, "remote_dom": DOM, "vcpu": SMALL,
    "virq": st.one_of(st.integers(0, 25), st.just(0x80000000)),
    "priority": st.integers(0, 17), "offset": st.sampled_from([0, 8, 12, 4024, 4032]),
    "control_gfn": st.just(0), "array_gfn": st.just(0)}
# destroy is rarer: it ends a domain for the rest of the run
OP_NAMES = [o for o in OPS if o != "destroy"] * 3 + ["send", "close", "bind_interdomain",
                                                    "alloc_unbound"] * 3 + ["destroy"]


@st.composite
def systems(draw: st.DrawFn) -> Any:
    """A booted dom0less (or dom0) system with random static channels."""
    dom0 = draw(st.booleans())
    s = System(dom0=dom0)
    n = draw(st.integers(1, 3))
    doms = [s.domu(f"domU{i + 1}", cpus=draw(st.integers(1, 2)),
                   enhanced="enabled" if dom0 and draw(st.booleans()) else None)
            for i in range(n)]
    ends = ([s.chosen] if dom0 else []) + doms
    used: dict[int, set[int]] = {id(d): set() for d in ends}

    for d in doms:  # the xenstore port Xen allocates at domain creation
        if "xen,enhanced" in d.properties:
            used[id(d)].add(1)

    def fresh(d: Any) -> int:
        p = draw(st.integers(1, 130).filter(lambda x: x not in used[id(d)]))
        used[id(d)].add(p)
        return p

    for _ in range(draw(st.integers(0, 4))):
        a, b = draw(st.sampled_from(ends)), draw(st.sampled_from(ends))
        pa = fresh(a)
        pb = fresh(b)
        s.pair(a, pa, b, pb)
    res = boot(s.config(dialect="xen"))
    assert res.outcome == "booted", res.failure
    return res


class Hostile(RuleBasedStateMachine):
    """One booted system; each rule is one call by anybody."""

    @initialize(res=systems(), xsm=st.sampled_from(["silo", "dummy"]))
    def booted(self, res: Any, xsm: str) -> None:
        self.res = res
        self.state = res.state
        self.state.xsm = xsm
        self.peers = boot_peers(res)
        self.view = state_json(self.state, {})

    @rule(data=st.data(), op=st.sampled_from(OP_NAMES))
    def call(self, data: st.DataObject, op: str) -> None:
        live = sorted(self.state.domains)
        in_use = sorted({p for d in self.state.domains.values() for p in d.chans if p})
        near = {"port": in_use, "remote_port": in_use, "dom": live, "remote_dom": live}
        caller = data.draw(st.sampled_from(live) | st.integers(0, 4) if live
                           else st.integers(0, 4))
        args = {}
        for a in OPS[op].args:
            strat = ARG[a.name]
            if near.get(a.name):
                strat = st.sampled_from(near[a.name]) | st.sampled_from(near[a.name]) | strat
            args[a.name] = data.draw(strat)
        before = self.view
        rc, _ = apply(self.state, Call(caller, op, args, Span("t", 1, 1)))
        after = state_json(self.state, {})
        self.view = after
        check_step(caller, op, args, rc, before, after)

    @rule(data=st.data())
    def bind_to_a_waiting_port(self, data: st.DataObject) -> None:
        """The remote end of an unbound port binds to it (the way channels are made)."""
        waiting = sorted((d.domid, p, ch.remote_domid) for d in self.state.domains.values()
                         for p, ch in d.chans.items() if ch.state == 2)
        if not waiting:
            return
        dom, port, remote = data.draw(st.sampled_from(waiting))
        args = {"remote_dom": dom, "remote_port": port}
        before = self.view
        rc, _ = apply(self.state, Call(remote, "bind_interdomain", args, Span("t", 1, 1)))
        self.view = state_json(self.state, {})
        check_step(remote, "bind_interdomain", args, rc, before, self.view)

    @invariant()
    def holds(self) -> None:
        if hasattr(self, "state"):
            assert invariant_violations(self.state, self.peers) == []


def _ports(view: dict[str, Any]) -> dict[tuple[int, int], dict[str, Any]]:
    return {(int(d), p["port"]): p for d, v in view.items() for p in v["ports"]}


def check_step(caller: int, op: str, args: dict[str, int], rc: int | None,
               before: dict[str, Any], after: dict[str, Any]) -> None:
    """The step properties of spec/semantics.md (STEP-*)."""
    closed = {"status": "closed", "pending": False, "masked": False, "static": False}
    pb, pa = _ports(before), _ports(after)
    changed = {k for k in set(pb) | set(pa) if pb.get(k, closed) != pa.get(k, closed)}
    if rc is None:  # STEP-NOT-RUNNING
        assert str(caller) not in before and not changed
        return
    if rc != 0:  # STEP-FAIL-NOCHANGE
        assert not changed, (op, args, rc)
        return
    if op == "send":
        # STEP-SEND-TARGET: the peer's port (interdomain) or the sender's own (IPI), only
        # its pending bit, only 0 -> 1; STEP-SEND-RAISES: and that bit is set after
        mine = pb.get((caller, args["port"]), closed)
        target = ((mine["remote_dom"], mine["remote_port"]) if mine["status"] == "interdomain"
                  else (caller, args["port"]) if mine["status"] == "ipi" else None)
        assert mine["status"] in ("interdomain", "ipi", "unbound")
        assert changed <= ({target} if target else set()), (changed, target)
        if target is not None and after[str(target[0])]["abi"] == "2l":
            assert pa[target]["pending"]  # FIFO may save or drop it (FIFO-RAISE)
            for k in changed:
                assert {f for f in pa[k] if pa[k].get(f) != pb[k].get(f)} == {"pending"}
    for (d, p) in changed:
        b, a = pb.get((d, p), closed), pa.get((d, p), closed)
        # STEP-MASK-OWNER: only the owner's own calls change a mask bit
        if b["masked"] != a["masked"]:
            assert d == caller and op in ("unmask", "mask", "reset", "init_control",
                                          "destroy"), (op, d, p)
        # STEP-FRAME: another domain's port changes only through a binding to the caller
        if d != caller and op != "destroy":
            if op == "send":
                mine = pb.get((caller, args["port"]), closed)
                assert mine.get("status") == "interdomain" and (
                    mine["remote_dom"], mine["remote_port"]) == (d, p), (op, d, p)
                # STEP-SEND-TARGET: only the pending bit, only 0 -> 1
                assert {k for k in a if a.get(k) != b.get(k)} == {"pending"}
                assert a["pending"] and not b["pending"]
            elif op in ("close", "reset"):
                assert b.get("status") == "interdomain" and b["remote_dom"] == caller
                assert a["status"] == "unbound" and a["remote_dom"] == caller
                assert a["pending"] == b["pending"] and a["masked"] == b["masked"]
            elif op == "bind_interdomain":
                assert b.get("status") == "unbound" and b["remote_dom"] == caller
                assert a["status"] == "interdomain" and a["remote_dom"] == caller
            elif op == "alloc_unbound":
                assert b["status"] == "closed" and a["status"] == "unbound"
            else:
                raise AssertionError(f"{op} by d{caller} changed d{d}:{p}")
        # STEP-STATIC-KEEP: a static channel loses its peer only by an end's own call
        if b.get("static") and b.get("status") == "interdomain" and (
                a.get("status") != "interdomain" or a.get("remote_port") != b["remote_port"]):
            assert caller in (d, b["remote_dom"]) and op in ("close", "reset", "destroy")
        # STEP-PENDING-RAISE: a pending bit is raised only by send, a bind's own port,
        # or the owner's FIFO calls (expand_array, unmask re-link, and the ABI switches
        # of init_control and reset, which change which bits are visible)
        if a["pending"] and not b["pending"] and a.get("status") == b.get("status"):
            assert op in ("send", "expand_array", "unmask", "init_control", "reset"), (op, d, p)


TestHostile = Hostile.TestCase
TestHostile.settings = settings(max_examples=100, stateful_step_count=40, deadline=None,
                                suppress_health_check=[HealthCheck.too_slow])


@settings(max_examples=40, deadline=None)
@given(res=systems())
def test_run_initial_is_the_boot_json_plus_run_fields(res: Any) -> None:
    """`boot --format json` and `run`'s initial state agree on every boot key and bit."""
    from evtchn_spec.refimpl.runtime import run

    boot_doc = res.to_json()
    doc = run(res, [])
    assert doc["final"]["domains"] == doc["initial"]["domains"]
    assert set(doc["initial"]["domains"]) == set(boot_doc["domains"])
    for domid, dom in boot_doc["domains"].items():
        mine = doc["initial"]["domains"][domid]
        assert mine["name"] == dom["name"]
        assert [{k: p[k] for k in b} for p, b in zip(mine["ports"], dom["ports"], strict=True)
                ] == dom["ports"]
    assert invariant_violations(res.state, boot_peers(res)) == []


@settings(max_examples=30, deadline=None)
@given(res=systems())
def test_arrays_mirror_the_state(res: Any) -> None:
    """INV-SYMMETRIC restated over runtime.arrays, the shape the Z3 encodings use."""
    from evtchn_spec.refimpl.runtime import arrays

    a = arrays(res.state, boot_peers(res))
    for (d, p), s in a["st"].items():
        assert a["live"][(d,)] and p < a["valid"][(d,)]
        if s == 3:
            e, q = a["rdom"][(d, p)], a["rport"][(d, p)]
            assert a["st"][(e, q)] == 3 and (a["rdom"][(e, q)], a["rport"][(e, q)]) == (d, p)
            if a["static"].get((d, p)):
                assert (a["bootpeer_dom"][(d, p)], a["bootpeer_port"][(d, p)]) == (e, q)
    for (d, p) in a["pend"]:
        assert a["st"].get((d, p), 0) >= 2
    assert all(a["st"][(d[0], 0)] == 1 for d in a["live"])
