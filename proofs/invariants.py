"""Induction proofs of the invariants of spec/semantics.md §6 (and its step
properties) over the Z3 transition relation of transition.py.

Every invariant is a per-point predicate (a domain, a port (d, p), or a VIRQ slot
(d, v, q)); the global invariant is its universal closure over live domains. The
step case is checked per operation and per invariant, quantifier-free: the
pre-state is an arbitrary state of which we assume the invariants only at finitely
many points (the points the operation and the checked post-state point read: the
caller's argument port and its peer, the allocated port, the remote port, the
checked point and its peer, ...). These are instances of the universal hypothesis,
so an unsat answer proves the universal step; a sat answer is a counterexample to
induction, reported as such (never as proved). See spec/proofs-runtime.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import z3

from . import transition as T
from .transition import (
    DOM,
    INTERDOMAIN,
    PORT,
    RESERVED,
    UNBOUND,
    VIRQ,
    WORD,
    Args,
    Choice,
    ZState,
    bv,
    st_val,
)

FREE = T.FREE

# -- the invariants as per-point predicates ---------------------------------------

PortInv = Callable[[ZState, Any, Any], Any]


def _peer(s: ZState, d: Any, p: Any) -> tuple[Any, Any]:
    return s.rdom[d, p], s.rport[d, p]


def inv_reserved(s: ZState, d: Any, p: Any) -> Any:
    return (p == bv(0, PORT)) == (s.st[d, p] == st_val(RESERVED))


def inv_valid(s: ZState, d: Any, p: Any) -> Any:
    return z3.Implies(s.st[d, p] != st_val(FREE), z3.ULT(p, s.valid[d]))


def inv_limit(s: ZState, d: Any, p: Any) -> Any:
    return z3.Implies(z3.And(s.st[d, p] != st_val(FREE), p != bv(0)),
                      z3.And(z3.ULE(p, s.maxport[d]), z3.ULT(p, T.max_evtchns(s, d))))


def inv_free(s: ZState, d: Any, p: Any) -> Any:
    return z3.Implies(s.st[d, p] == st_val(FREE),
                      z3.And(s.vcpu[d, p] == bv(0), z3.Not(s.static[d, p])))


def inv_symmetric(s: ZState, d: Any, p: Any) -> Any:
    e, q = _peer(s, d, p)
    return z3.Implies(s.st[d, p] == st_val(INTERDOMAIN),
                      z3.And(s.live[e], s.st[e, q] == st_val(INTERDOMAIN), s.rdom[e, q] == d,
                             s.rport[e, q] == p, z3.Or(e != d, q != p)))


def inv_vcpu(s: ZState, d: Any, p: Any) -> Any:
    return z3.ULT(s.vcpu[d, p], s.nvcpu[d])


def inv_virq_port(s: ZState, d: Any, p: Any) -> Any:
    return z3.Implies(s.st[d, p] == st_val(VIRQ),
                      z3.And(p != bv(0), s.v2e[d, T.vkey(s, d, p), s.virq[d, p]] == p))


def inv_static(s: ZState, d: Any, p: Any) -> Any:
    return z3.Implies(s.static[d, p], z3.Or(s.st[d, p] == st_val(UNBOUND),
                                            s.st[d, p] == st_val(INTERDOMAIN)))


def inv_static_peer(s: ZState, d: Any, p: Any) -> Any:
    e, q = _peer(s, d, p)
    return z3.Implies(z3.And(s.static[d, p], s.st[d, p] == st_val(INTERDOMAIN),
                             s.static[e, q]),
                      z3.And(e == s.bpd[d, p], q == s.bpp[d, p]))


def inv_pending_usable(s: ZState, d: Any, p: Any) -> Any:
    return z3.Implies(z3.And(z3.Not(s.fifo[d]), z3.Not(s.fused[d]), s.pend[d, p]),
                      T.usable(s, d, p))


def inv_2l_range_spec(s: ZState, d: Any, p: Any) -> Any:
    """INV-2L-RANGE as semantics.md states it (only for 2-level domains)."""
    return z3.Implies(z3.And(z3.Not(s.fifo[d]), z3.UGE(p, bv(T.N2L))),
                      z3.And(z3.Not(s.pend[d, p]), z3.Not(s.mask[d, p])))


def inv_2l_range(s: ZState, d: Any, p: Any) -> Any:
    """The strengthened form: no 2-level bit at or above 4096 in any domain, FIFO
    or not (the spec's form is not inductive: a reset of a FIFO domain brings its
    2-level bits back into view)."""
    return z3.Implies(z3.UGE(p, bv(T.N2L)), z3.And(z3.Not(s.pend[d, p]),
                                                     z3.Not(s.mask[d, p])))


def inv_virq_slot(s: ZState, d: Any, v: Any, q: Any) -> Any:
    """INV-VIRQ, the v2e side: a non-zero entry names a virq port of that VIRQ
    whose v2e index is v."""
    p = s.v2e[d, v, q]
    return z3.Implies(p != bv(0, PORT), z3.And(s.st[d, p] == st_val(VIRQ),
                                               s.virq[d, p] == q, T.vkey(s, d, p) == v))


def inv_domain(s: ZState, d: Any) -> Any:
    """Per-domain parts of INV-VALID and INV-VCPU (nvcpu >= 1), and the
    strengthening INV-PENDING-USABLE needs: FIFO on implies FIFO used."""
    v = s.valid[d]
    return z3.And(z3.URem(v, bv(64)) == bv(0), z3.UGE(v, bv(64)), z3.ULE(v, bv(T.NFIFO)),
                  z3.UGE(s.nvcpu[d], bv(1)), z3.Implies(s.fifo[d], s.fused[d]))


PORT_INVS: dict[str, PortInv] = {
    "INV-RESERVED": inv_reserved, "INV-VALID": inv_valid, "INV-LIMIT": inv_limit,
    "INV-FREE": inv_free, "INV-SYMMETRIC": inv_symmetric, "INV-VCPU": inv_vcpu,
    "INV-VIRQ": inv_virq_port, "INV-STATIC": inv_static,
    "INV-STATIC-PEER": inv_static_peer, "INV-PENDING-USABLE": inv_pending_usable,
    "INV-2L-RANGE": inv_2l_range,
}
INV_IDS = (*PORT_INVS, "INV-DOMAIN")


def all_port(s: ZState, d: Any, p: Any, only: tuple[str, ...] | None = None) -> Any:
    return z3.Implies(s.live[d], z3.And(*[f(s, d, p) for k, f in PORT_INVS.items()
                                          if only is None or k in only]))


def all_slot(s: ZState, d: Any, v: Any, q: Any) -> Any:
    return z3.Implies(s.live[d], inv_virq_slot(s, d, v, q))


def all_dom(s: ZState, d: Any) -> Any:
    return z3.Implies(s.live[d], inv_domain(s, d))


# -- the instantiation points ------------------------------------------------------

@dataclass
class Points:
    ports: list[tuple[Any, Any]] = field(default_factory=list)
    slots: list[tuple[Any, Any, Any]] = field(default_factory=list)
    doms: list[Any] = field(default_factory=list)


def points(s: ZState, c: Any, a: Args, lp: Any, d0: Any, p0: Any, v0: Any, q0: Any
           ) -> Points:
    """Where the universal pre-state hypothesis is instantiated."""
    pts = Points()
    r = T.resolve(c, a.remote_dom)
    ad = T.resolve(c, a.dom)
    base = [(d0, p0), (c, a.port), (c, lp), (ad, lp), (r, a.remote_port),
            (d0, s.v2e[d0, v0, q0]), (c, s.v2e[c, a.vcpu, a.virq]), (d0, bv(0, PORT))]
    for d, p in base:
        pts.ports.append((d, p))
        pts.ports.append(_peer(s, d, p))
    pts.slots += [(d0, v0, q0), (c, a.vcpu, a.virq), (c, T.vkey(s, c, a.port),
                                                       s.virq[c, a.port]),
                  (d0, T.vkey(s, d0, p0), s.virq[d0, p0])]
    pts.doms += [d0, c, r, ad, s.rdom[d0, p0], s.rdom[c, a.port]]
    return pts


def assume(s: ZState, pts: Points) -> list[Any]:
    out = [all_port(s, d, p) for d, p in pts.ports]
    out += [all_slot(s, d, v, q) for d, v, q in pts.slots]
    out += [all_dom(s, d) for d in pts.doms]
    return out


# -- results -------------------------------------------------------------------

@dataclass(frozen=True)
class Verdict:
    claim: str
    op: str
    xsm: str
    status: str  # proved | counterexample | unknown
    seconds: float
    detail: str = ""


def _check(solver: z3.Solver, goal: Any, timeout_ms: int) -> tuple[str, z3.ModelRef | None]:
    solver.push()
    solver.add(goal)
    solver.set("timeout", timeout_ms)
    r = solver.check()
    model = solver.model() if r == z3.sat else None
    solver.pop()
    status = "proved" if r == z3.unsat else "counterexample" if r == z3.sat else "unknown"
    return status, model


def _post_goal(inv: str, s: ZState, d0: Any, p0: Any, v0: Any, q0: Any) -> Any:
    if inv == "INV-DOMAIN":
        return z3.Not(all_dom(s, d0))
    if inv == "INV-VIRQ":
        return z3.Or(z3.Not(all_port(s, d0, p0, ("INV-VIRQ",))),
                     z3.Not(all_slot(s, d0, v0, q0)))
    return z3.Not(all_port(s, d0, p0, (inv,)))


def _vars(tag: str) -> tuple[ZState, Any, Args, Choice, Any, Any, Any, Any]:
    return (ZState.fresh(tag), z3.BitVec(f"c_{tag}", 16), Args.fresh(tag),
            Choice.fresh(tag), z3.BitVec(f"d0_{tag}", 16), z3.BitVec(f"p0_{tag}", 32),
            z3.BitVec(f"v0_{tag}", 32), z3.BitVec(f"q0_{tag}", 32))


def prove_step(op: str, xsm: str, invs: tuple[str, ...] = INV_IDS,
               timeout_ms: int = 30000) -> list[Verdict]:
    """The induction step for one operation: each invariant after the call."""
    s, c, a, ch, d0, p0, v0, q0 = _vars("i")
    stp = T.step(s, op, c, a, ch, xsm)
    solver = z3.Solver()
    solver.add(*assume(s, points(s, c, a, ch.lp, d0, p0, v0, q0)))
    out = []
    for inv in invs:
        t0 = time.perf_counter()
        status, model = _check(solver, _post_goal(inv, stp.post, d0, p0, v0, q0),
                               timeout_ms)
        detail = ""
        if model is not None:
            detail = (f"caller d{model.eval(c, True)}, point d{model.eval(d0, True)}:"
                      f"{model.eval(p0, True)}")
        out.append(Verdict(inv, op, xsm, status, time.perf_counter() - t0, detail))
    return out


def init_port(s: ZState, d: Any, p: Any) -> Any:
    """The boot-state predicate (spec/boot.md's initial state) at one port: port 0
    reserved, every other port free, unbound (xenstore) or interdomain (a static
    channel, pointing back at a live domain's other port, its boot peer), within
    the bucket and the limits, vCPU 0, nothing masked, only the bind side pending."""
    t = s.st[d, p]
    e, q = _peer(s, d, p)
    inter = t == st_val(INTERDOMAIN)
    return z3.Implies(s.live[d], z3.And(
        (p == bv(0, PORT)) == (t == st_val(RESERVED)),
        z3.Or(t == st_val(FREE), t == st_val(RESERVED), t == st_val(UNBOUND), inter),
        z3.Implies(z3.And(t != st_val(FREE), p != bv(0)),
                   z3.And(z3.ULT(p, s.valid[d]), z3.ULE(p, s.maxport[d]),
                          z3.ULT(p, bv(T.N2L)))),
        s.vcpu[d, p] == bv(0), z3.Not(s.mask[d, p]),
        z3.Implies(s.pend[d, p], inter),
        s.static[d, p] == inter,
        z3.Implies(inter, z3.And(s.live[e], s.st[e, q] == st_val(INTERDOMAIN),
                                 s.rdom[e, q] == d, s.rport[e, q] == p,
                                 z3.Or(e != d, q != p), s.bpd[d, p] == e,
                                 s.bpp[d, p] == q))))


def init_dom(s: ZState, d: Any) -> Any:
    v = s.valid[d]
    return z3.Implies(s.live[d], z3.And(
        z3.URem(v, bv(64)) == bv(0), z3.UGE(v, bv(64)), z3.ULE(v, bv(T.N2L)),
        z3.UGE(s.nvcpu[d], bv(1)), z3.Not(s.fifo[d]), z3.Not(s.fused[d])))


def prove_base(invs: tuple[str, ...] = INV_IDS, timeout_ms: int = 30000) -> list[Verdict]:
    """Every state satisfying the boot-state predicate satisfies the invariants
    (config-independent base case)."""
    s, _c, _a, _ch, d0, p0, v0, q0 = _vars("b")
    solver = z3.Solver()
    for d, p in [(d0, p0), _peer(s, d0, p0), (d0, s.v2e[d0, v0, q0])]:
        solver.add(init_port(s, d, p))
    solver.add(init_dom(s, d0), z3.Implies(s.live[d0], s.v2e[d0, v0, q0] == bv(0, PORT)))
    out = []
    for inv in invs:
        t0 = time.perf_counter()
        status, _ = _check(solver, _post_goal(inv, s, d0, p0, v0, q0), timeout_ms)
        out.append(Verdict(inv, "boot", "-", status, time.perf_counter() - t0))
    return out


def prove_concrete(arr: dict[str, dict[tuple[int, ...], int]],
                   invs: tuple[str, ...] = INV_IDS, timeout_ms: int = 30000
                   ) -> list[Verdict]:
    """The config-specific base case: a concrete state (runtime.arrays of the
    booted FILE) satisfies every invariant at every point."""
    s = T.concrete(arr)
    d0, p0 = z3.BitVec("d0_c", 16), z3.BitVec("p0_c", 32)
    v0, q0 = z3.BitVec("v0_c", 32), z3.BitVec("q0_c", 32)
    solver = z3.Solver()
    out = []
    for inv in invs:
        t0 = time.perf_counter()
        status, model = _check(solver, _post_goal(inv, s, d0, p0, v0, q0), timeout_ms)
        detail = "" if model is None else f"d{model.eval(d0, True)}:{model.eval(p0, True)}"
        out.append(Verdict(inv, "state", "-", status, time.perf_counter() - t0, detail))
    return out


# -- step properties (two-state) ----------------------------------------------------

STEP_IDS = ("STEP-STATIC-KEEP", "STEP-MASK-OWNER", "STEP-FAIL-NOCHANGE", "STEP-SEND-TARGET")


def _port_fields_same(s: ZState, t: ZState, d: Any, p: Any) -> Any:
    return z3.And(s.st[d, p] == t.st[d, p], s.rdom[d, p] == t.rdom[d, p],
                  s.rport[d, p] == t.rport[d, p], s.vcpu[d, p] == t.vcpu[d, p],
                  s.static[d, p] == t.static[d, p], s.pend[d, p] == t.pend[d, p],
                  s.mask[d, p] == t.mask[d, p])


def intact(s: ZState, d: Any, p: Any) -> Any:
    """(d,p) is one end of its static channel, still joined to its boot peer."""
    e, q = s.bpd[d, p], s.bpp[d, p]
    return z3.And(s.live[d], s.static[d, p], s.st[d, p] == st_val(INTERDOMAIN),
                  s.rdom[d, p] == e, s.rport[d, p] == q, s.static[e, q])


def prove_step_props(op: str, xsm: str, timeout_ms: int = 30000) -> list[Verdict]:
    s, c, a, ch, d0, p0, v0, q0 = _vars("s")
    stp = T.step(s, op, c, a, ch, xsm)
    t = stp.post
    solver = z3.Solver()
    solver.add(*assume(s, points(s, c, a, ch.lp, d0, p0, v0, q0)))
    goals = {
        "STEP-STATIC-KEEP": z3.And(intact(s, d0, p0), z3.Not(intact(t, d0, p0)),
                                   c != d0, c != s.bpd[d0, p0]),
        "STEP-MASK-OWNER": z3.And(s.live[d0], s.mask[d0, p0] != t.mask[d0, p0], c != d0),
        "STEP-FAIL-NOCHANGE": z3.And(s.live[d0], z3.Not(z3.Or(stp.rc == bv(0),
                                                              stp.rc == bv(T.NOT_RUN))),
                                     z3.Not(_port_fields_same(s, t, d0, p0))),
    }
    if op == "send":
        e, q = z3.If(s.st[c, a.port] == st_val(INTERDOMAIN), s.rdom[c, a.port], c), \
            z3.If(s.st[c, a.port] == st_val(INTERDOMAIN), s.rport[c, a.port], a.port)
        same_but_pend = z3.And(s.st[d0, p0] == t.st[d0, p0], s.rdom[d0, p0] == t.rdom[d0, p0],
                               s.rport[d0, p0] == t.rport[d0, p0],
                               s.vcpu[d0, p0] == t.vcpu[d0, p0],
                               s.static[d0, p0] == t.static[d0, p0],
                               s.mask[d0, p0] == t.mask[d0, p0])
        ok = z3.And(same_but_pend, z3.Or(s.pend[d0, p0] == t.pend[d0, p0],
                                         z3.And(d0 == e, p0 == q, t.pend[d0, p0],
                                                z3.Not(s.pend[d0, p0]))))
        goals["STEP-SEND-TARGET"] = z3.Not(ok)
    out = []
    for k, g in goals.items():
        t0 = time.perf_counter()
        status, _ = _check(solver, g, timeout_ms)
        out.append(Verdict(k, op, xsm, status, time.perf_counter() - t0))
    return out


def prove_all(xsms: tuple[str, ...] = ("silo", "dummy"), timeout_ms: int = 30000
              ) -> list[Verdict]:
    """Base case, then the step of every operation under each XSM policy."""
    out = prove_base(timeout_ms=timeout_ms)
    for xsm in xsms:
        for op in T.OP_NAMES:
            out += prove_step(op, xsm, timeout_ms=timeout_ms)
            out += prove_step_props(op, xsm, timeout_ms=timeout_ms)
    return out


def not_inductive_as_stated(timeout_ms: int = 30000) -> Verdict:
    """The evidence for the strengthening of INV-2L-RANGE: the spec's form fails
    the induction step on reset (a FIFO domain switching back to 2-level)."""
    s, c, a, ch, d0, p0, v0, q0 = _vars("w")
    stp = T.step(s, "reset", c, a, ch, "silo")
    solver = z3.Solver()
    pts = points(s, c, a, ch.lp, d0, p0, v0, q0)
    solver.add(*[z3.Implies(s.live[d], z3.And(
        *[f(s, d, p) for k, f in PORT_INVS.items() if k != "INV-2L-RANGE"],
        inv_2l_range_spec(s, d, p))) for d, p in pts.ports])
    solver.add(*[all_slot(s, d, v, q) for d, v, q in pts.slots])
    solver.add(*[all_dom(s, d) for d in pts.doms])
    t0 = time.perf_counter()
    status, _ = _check(solver, z3.And(stp.post.live[d0],
                                      z3.Not(inv_2l_range_spec(stp.post, d0, p0))),
                       timeout_ms)
    return Verdict("INV-2L-RANGE (as stated)", "reset", "silo", status,
                   time.perf_counter() - t0)


def summary(vs: list[Verdict]) -> str:
    by: dict[str, list[Verdict]] = {}
    for v in vs:
        by.setdefault(v.claim, []).append(v)
    lines = []
    for claim, items in by.items():
        bad = [v for v in items if v.status != "proved"]
        status = "proved" if not bad else (
            "counterexample" if any(v.status == "counterexample" for v in bad) else "unknown")
        secs = sum(v.seconds for v in items)
        lines.append(f"  {status:<14} {claim:<20} {len(items)} queries, {secs:.3f} s")
        for v in bad:
            lines.append(f"      {v.status} after {v.op} ({v.xsm}) {v.detail}")
    return "\n".join(lines)


__all__ = [
    "DOM",
    "INV_IDS",
    "STEP_IDS",
    "WORD",
    "Verdict",
    "prove_all",
    "prove_base",
    "prove_concrete",
    "prove_step",
    "prove_step_props",
    "summary",
]
