"""Refinement: every refimpl step is a step of the Z3 transition relation
(proofs/transition.py), and the relation admits no other step.

Random booted systems and hostile call sequences (the generators of
test_runtime_machine.py). For each call, from the refimpl's state before it
(runtime.arrays): (1) with the relation's free choices set to what the refimpl did
(the port get_free_port returned; a FIFO-only outcome either way) the relation's
rc and next state equal the refimpl's at every point (unsat of "some point
differs"); (2) for 2-level callers, with get_free_port's "lowest" stated exactly,
no choice gives another rc or another next state.
"""

from __future__ import annotations

from typing import Any

import z3
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_runtime_machine import ARG, OP_NAMES, systems

from evtchn_spec.grammar.errors import Span
from evtchn_spec.proofs import transition as T
from evtchn_spec.refimpl.runtime import OPS as T_OPS
from evtchn_spec.refimpl.runtime import Call, apply, arrays, boot_peers
from evtchn_spec.refimpl.xen_state import DOMID_SELF, XenState

Arr = dict[str, dict[tuple[int, ...], int]]


def snapshot(state: XenState, peers: dict[tuple[int, int], tuple[int, int]]) -> Arr:
    a = arrays(state, peers)
    a["fused"] = {(d,): 1 for d, dom in state.domains.items() if dom.fifo_used}
    return a


def lowest_free(a: Arr, d: int) -> int:
    """What get_free_port returns in the pre-state (0: none)."""
    if (d,) not in a["live"]:
        return 0
    limit = min(a["maxport"].get((d,), 0) + 1,
                T.NFIFO if a["fifo"].get((d,)) else T.N2L)
    for p in range(1, limit):
        if a["st"].get((d, p), 0) == 0:
            return p
    return 0


def differs(s: T.ZState, t: T.ZState, d: Any, p: Any, v: Any, q: Any) -> Any:
    """Some observable field at (d, p) / (d, v, q) / d differs (fields that the
    state does not have, like rport of an unbound port, are not compared)."""
    sp = s.st[d, p]
    same_port = z3.And(
        sp == t.st[d, p],
        z3.Implies(z3.Or(sp == T.st_val(T.UNBOUND), sp == T.st_val(T.INTERDOMAIN)),
                   s.rdom[d, p] == t.rdom[d, p]),
        z3.Implies(sp == T.st_val(T.INTERDOMAIN), s.rport[d, p] == t.rport[d, p]),
        z3.Implies(sp == T.st_val(T.VIRQ), s.virq[d, p] == t.virq[d, p]),
        s.vcpu[d, p] == t.vcpu[d, p], s.static[d, p] == t.static[d, p],
        s.pend[d, p] == t.pend[d, p], s.mask[d, p] == t.mask[d, p],
        s.valid[d] == t.valid[d], s.fifo[d] == t.fifo[d], s.fused[d] == t.fused[d],
        s.v2e[d, v, q] == t.v2e[d, v, q])
    return z3.Or(s.live[d] != t.live[d], z3.And(t.live[d], z3.Not(same_port)))


def check_call(pre: Arr, post: Arr, caller: int, op: str, args: dict[str, int],
               rc: int | None, xsm: str) -> None:
    s, t = T.concrete(pre), T.concrete(post)
    c = z3.BitVecVal(caller, 16)
    want = T.bv(T.NOT_RUN if rc is None else rc & 0xFFFFFFFF)
    a = T.args_of(args)
    d0, p0 = z3.BitVec("d0", 16), z3.BitVec("p0", 32)
    v0, q0 = z3.BitVec("v0", 32), z3.BitVec("q0", 32)
    dom = args.get("dom", DOMID_SELF)
    alloc_dom = caller if op != "alloc_unbound" or dom == DOMID_SELF else dom
    lp = lowest_free(pre, alloc_dom)
    # (1) the refimpl's step is in the relation
    ok = False
    for nd in (False, True):
        stp = T.step(s, op, c, a, T.Choice(T.bv(lp), z3.BoolVal(nd)), xsm)
        solver = z3.Solver()
        solver.add(z3.Or(stp.rc != want, differs(stp.post, t, d0, p0, v0, q0)))
        if solver.check() == z3.unsat:
            ok = True
            break
    assert ok, f"refimpl step not in the relation: d{caller} {op}{args} rc {rc}"
    # (2) nothing else is: exact allocation, 2-level allocator
    if pre["fifo"].get((alloc_dom,)) or pre["fifo"].get((caller,)):
        return
    ch = T.Choice.fresh("x")
    stp = T.step(s, op, c, a, ch, xsm, exact=True)
    solver = z3.Solver()
    solver.set("timeout", 20000)
    solver.add(stp.side, z3.Or(stp.rc != want, differs(stp.post, t, d0, p0, v0, q0)))
    r = solver.check()
    assert r == z3.unsat, f"relation admits another step ({r}): d{caller} {op}{args} rc {rc}"


CALL = st.sampled_from(OP_NAMES).flatmap(
    lambda op: st.tuples(st.one_of(st.integers(0, 4), st.just(9)), st.just(op),
                         st.fixed_dictionaries({a.name: ARG[a.name]
                                                for a in T_OPS[op].args})))


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(res=systems(), xsm=st.sampled_from(["silo", "dummy"]),
       calls=st.lists(CALL, min_size=1, max_size=10))
def test_every_refimpl_step_is_exactly_a_relation_step(
        res: Any, xsm: str, calls: list[tuple[int, str, dict[str, int]]]) -> None:
    state = res.state
    state.xsm = xsm
    peers = boot_peers(res)
    for caller, op, args in calls:
        pre = snapshot(state, peers)
        rc, _ = apply(state, Call(caller, op, dict(args), Span("<t>", 1, 1)))
        post = snapshot(state, peers)
        check_call(pre, post, caller, op, args, rc, xsm)


def test_a_wrong_relation_is_caught() -> None:
    """The check is not vacuous: a refimpl step compared with another op's
    relation (close instead of send on a static port) is rejected."""
    from test_boot_model import System

    from evtchn_spec.refimpl.boot import boot

    s = System(dom0=False)
    a, b = s.domu("domU1"), s.domu("domU2")
    s.pair(a, 10, b, 11)
    res = boot(s.config(dialect="xen"))
    peers = boot_peers(res)
    pre = snapshot(res.state, peers)
    rc, _ = apply(res.state, Call(1, "close", {"port": 10}, Span("<t>", 1, 1)))
    post = snapshot(res.state, peers)
    check_call(pre, post, 1, "close", {"port": 10}, rc, "silo")
    try:
        check_call(pre, post, 1, "send", {"port": 10}, rc, "silo")
    except AssertionError:
        return
    raise AssertionError("a close was accepted as a send")
