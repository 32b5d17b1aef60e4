"""The run-time transition relation of spec/semantics.md §3 in Z3.

Written from the numbered rules (SEND-*, CLOSE-*, ALLOC-*, ...), not from the
refimpl: tests/test_proofs_transition.py is where the two meet. The state is the
array vocabulary of semantics.md §1 (domains x ports); one step is one call by a
symbolic, hostile caller with symbolic arguments. `step` returns the next state
and the return code as Z3 terms, for one operation named in Python (the induction
proofs go operation by operation) or, with `step_any`, for a symbolic operation
code (the bounded attack search unrolls that).

Abstracted (spec/proofs-runtime.md): the per-vCPU selector and upcall bits
(`sel`, `up`: no invariant needs them), `active_evtchns` (INV-ACTIVE is left to
the refimpl's checker) and the FIFO word bits: under FIFO the 2-level arrays are
untouched (as in Xen), the FIFO ops only switch `fifo`/`fused`, and the outcomes
that depend on FIFO bits (-EBUSY of a LINKED port, a second control block, a full
event array) are free choices of the relation.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

import z3

DOM = z3.BitVecSort(16)
PORT = z3.BitVecSort(32)
WORD = z3.BitVecSort(32)
STS = z3.BitVecSort(3)

FREE, RESERVED, UNBOUND, INTERDOMAIN, PIRQ, VIRQ, IPI = range(7)
DOMID_SELF = 0x7FF0
NR_VIRQS = 24
PER_VCPU_VIRQS = (0, 1, 7, 13)
N2L = 4096
NFIFO = 1 << 17
BUCKET = 64
NOT_RUN = 1  # rc of a call whose caller is not running (run prints null)

EPERM, ENOENT, ESRCH, EBUSY, EEXIST, EINVAL, ENOSPC, ENOSYS, EACCES, EOPNOTSUPP = (
    1, 2, 3, 16, 17, 22, 28, 38, 13, 95)

# the operations and the argument names each reads (trace.md's table)
OPS: dict[str, tuple[str, ...]] = {
    "send": ("port",), "close": ("port",), "unmask": ("port",),
    "status": ("dom", "port"), "alloc_unbound": ("dom", "remote_dom"),
    "bind_interdomain": ("remote_dom", "remote_port"), "bind_ipi": ("vcpu",),
    "bind_virq": ("virq", "vcpu"), "bind_vcpu": ("port", "vcpu"), "reset": ("dom",),
    "reset_cont": ("dom",), "init_control": ("offset", "vcpu"), "expand_array": (),
    "set_priority": ("port", "priority"), "mask": ("port",), "clear": ("port",),
    "ack": ("vcpu",), "destroy": (),
}
OP_NAMES = tuple(OPS)


def bv(v: int, sort: z3.BitVecSortRef = WORD) -> z3.BitVecRef:
    return z3.BitVecVal(v, sort)


def st_val(v: int) -> z3.BitVecRef:
    return z3.BitVecVal(v, STS)


@dataclass(frozen=True)
class ZState:
    """One state: Z3 arrays named as in semantics.md §1 (`fused`: the ghost
    "this domain ever switched to FIFO" that INV-PENDING-USABLE needs)."""

    live: Any
    ctrl: Any
    nvcpu: Any
    maxport: Any
    valid: Any
    fifo: Any
    fused: Any
    st: Any
    rdom: Any
    rport: Any
    vcpu: Any
    virq: Any
    static: Any
    bpd: Any
    bpp: Any
    pend: Any
    mask: Any
    v2e: Any

    @staticmethod
    def fresh(tag: str) -> ZState:
        def a(name: str, *sorts: z3.SortRef) -> Any:
            return z3.Array(f"{name}_{tag}", *sorts)
        B = z3.BoolSort()
        return ZState(
            live=a("live", DOM, B), ctrl=a("ctrl", DOM, B), nvcpu=a("nvcpu", DOM, WORD),
            maxport=a("maxport", DOM, WORD), valid=a("valid", DOM, WORD),
            fifo=a("fifo", DOM, B), fused=a("fused", DOM, B), st=a("st", DOM, PORT, STS),
            rdom=a("rdom", DOM, PORT, DOM), rport=a("rport", DOM, PORT, PORT),
            vcpu=a("vcpu", DOM, PORT, WORD), virq=a("virq", DOM, PORT, WORD),
            static=a("static", DOM, PORT, B), bpd=a("bpd", DOM, PORT, DOM),
            bpp=a("bpp", DOM, PORT, PORT), pend=a("pend", DOM, PORT, B),
            mask=a("mask", DOM, PORT, B), v2e=a("v2e", DOM, WORD, WORD, PORT))

    def ite(self, cond: Any, other: ZState) -> ZState:
        """Field by field If(cond, self, other)."""
        out = {}
        for f in fields(self):
            x, y = getattr(self, f.name), getattr(other, f.name)
            out[f.name] = x if x.eq(y) else z3.If(cond, x, y)
        return ZState(**out)


@dataclass(frozen=True)
class Args:
    """The raw arguments of one call (trace.md widths; unused ones are ignored)."""

    dom: Any
    port: Any
    remote_dom: Any
    remote_port: Any
    vcpu: Any
    virq: Any
    offset: Any
    priority: Any

    @staticmethod
    def fresh(tag: str) -> Args:
        return Args(dom=z3.BitVec(f"a_dom_{tag}", 16), port=z3.BitVec(f"a_port_{tag}", 32),
                    remote_dom=z3.BitVec(f"a_rdom_{tag}", 16),
                    remote_port=z3.BitVec(f"a_rport_{tag}", 32),
                    vcpu=z3.BitVec(f"a_vcpu_{tag}", 32), virq=z3.BitVec(f"a_virq_{tag}", 32),
                    offset=z3.BitVec(f"a_off_{tag}", 32),
                    priority=z3.BitVec(f"a_prio_{tag}", 32))


@dataclass(frozen=True)
class Choice:
    """The relation's free choices for one step: `lp` the port get_free_port
    returns (constrained by `alloc_constraints`), and `nd` the outcome of a check
    on FIFO bits the model does not keep."""

    lp: Any
    nd: Any

    @staticmethod
    def fresh(tag: str) -> Choice:
        return Choice(lp=z3.BitVec(f"l_{tag}", 32), nd=z3.Bool(f"nd_{tag}"))


@dataclass(frozen=True)
class Step:
    post: ZState
    rc: Any  # BV32: 0, -errno, or NOT_RUN
    side: Any  # constraints on the free choices (Bool)
    lp: Any  # the port a successful alloc/bind returned


# -- shared definitions (semantics.md §2) ----------------------------------------

def is_global(q: Any) -> Any:
    return z3.And(*[q != v for v in PER_VCPU_VIRQS])


def vkey(s: ZState, d: Any, p: Any) -> Any:
    """The vCPU index of v2e for the virq port (d,p): 0 for a global VIRQ."""
    return z3.If(is_global(s.virq[d, p]), bv(0), s.vcpu[d, p])


def usable(s: ZState, d: Any, p: Any) -> Any:
    return z3.And(s.st[d, p] != st_val(FREE), s.st[d, p] != st_val(RESERVED))


def port_valid(s: ZState, d: Any, p: Any) -> Any:
    """R-VALID."""
    return z3.ULT(p, s.valid[d])


def max_evtchns(s: ZState, d: Any) -> Any:
    return z3.If(s.fifo[d], bv(NFIFO), bv(N2L))


def resolve(c: Any, dom: Any) -> Any:
    """R-LOOKUP's DOMID_SELF."""
    return z3.If(dom == z3.BitVecVal(DOMID_SELF, DOM), c, dom)


def alloc_ok(s: ZState, d: Any, lp: Any) -> Any:
    """R-ALLOC for the port get_free_port settles on."""
    return z3.And(z3.UGT(lp, bv(0)), z3.ULE(lp, s.maxport[d]), z3.ULT(lp, max_evtchns(s, d)),
                  s.st[d, lp] == st_val(FREE))


def lowest_free(s: ZState, d: Any, lp: Any, ok: Any, bound: int | None) -> Any:
    """get_free_port returns the lowest allocatable port, or fails when there is
    none. With `bound` None this is a quantified statement (exact); with a bound N
    the ports 1..N are enumerated (exact when d has fewer than N ports in use)."""
    if bound is None:
        q = z3.BitVec("q_free", 32)
        below = z3.ForAll([q], z3.Implies(z3.And(z3.UGT(q, bv(0)), z3.ULT(q, lp)),
                                          s.st[d, q] != st_val(FREE)))
        none = z3.ForAll([q], z3.Implies(alloc_ok(s, d, q), z3.BoolVal(False)))
        # under FIFO a LINKED port is busy (not modelled): any free port may be chosen
        return z3.Or(s.fifo[d], z3.If(ok, below, none))
    cs = [z3.Implies(z3.ULT(bv(q), lp), s.st[d, bv(q)] != st_val(FREE))
          for q in range(1, bound + 1)]
    return z3.And(z3.UGT(lp, bv(0)), z3.ULE(lp, bv(bound)), s.st[d, lp] == st_val(FREE), *cs)


def grow(s: ZState, d: Any, lp: Any) -> ZState:
    """R-ALLOC allocates the buckets up to lp (valid grows even if the call fails)."""
    end = (z3.UDiv(lp, bv(BUCKET)) + 1) * BUCKET
    return replace(s, valid=z3.Store(s.valid, d, z3.If(z3.ULT(lp, s.valid[d]), s.valid[d],
                                                        end)))


def raise_(s: ZState, d: Any, p: Any) -> ZState:
    """R-RAISE on the 2-level bitmap (FIFO domains: the 2-level bits are untouched;
    selector and upcall bits are abstracted)."""
    on = z3.And(usable(s, d, p), z3.Not(s.fifo[d]))
    return replace(s, pend=z3.Store(s.pend, d, p, z3.Or(s.pend[d, p], on)))


def free(s: ZState, d: Any, p: Any) -> ZState:
    """R-FREE: pending cleared (2-level, usable ports), free, vCPU 0, not static;
    the mask bit is kept."""
    clear = z3.And(usable(s, d, p), z3.Not(s.fifo[d]))
    return replace(s, pend=z3.Store(s.pend, d, p, z3.And(s.pend[d, p], z3.Not(clear))),
                   st=z3.Store(s.st, d, p, st_val(FREE)),
                   vcpu=z3.Store(s.vcpu, d, p, bv(0)),
                   static=z3.Store(s.static, d, p, z3.BoolVal(False)))


def silo_check(s: ZState, c: Any, a: Any, b: Any) -> Any:
    return z3.Or(s.ctrl[c], s.ctrl[a], s.ctrl[b], a == b)


def target(s: ZState, c: Any, d: Any) -> Any:
    """XSM_TARGET."""
    return z3.Or(c == d, s.ctrl[c])


def neg(e: int) -> z3.BitVecRef:
    return bv(-e & 0xFFFFFFFF)


class _Cases:
    """Checks in Xen's order: the first failing one gives the rc and its state."""

    def __init__(self) -> None:
        self.items: list[tuple[Any, Any, ZState | None]] = []

    def fail(self, cond: Any, rc: int | Any, state: ZState | None = None) -> None:
        self.items.append((cond, neg(rc) if isinstance(rc, int) else rc, state))

    def done(self, pre: ZState, ok_state: ZState) -> tuple[ZState, Any]:
        st, rc = ok_state, bv(0)
        for cond, r, s in reversed(self.items):
            st = (s or pre).ite(cond, st)
            rc = z3.If(cond, r, rc)
        return st, rc


# -- the operations (semantics.md §3) --------------------------------------------

def _close_one(s: ZState, c: Any, p: Any) -> ZState:
    """CLOSE-3..5 once the checks passed."""
    virq_gone = replace(s, v2e=z3.Store(s.v2e, c, vkey(s, c, p), s.virq[c, p], bv(0, PORT)))
    t = s.st[c, p]
    s_virq = free(virq_gone, c, p)
    e, q = s.rdom[c, p], s.rport[c, p]
    f = free(s, c, p)
    s_inter = replace(f, st=z3.Store(f.st, e, q, st_val(UNBOUND)),
                      rdom=z3.Store(f.rdom, e, q, c))
    return s_virq.ite(t == st_val(VIRQ), s_inter.ite(t == st_val(INTERDOMAIN), free(s, c, p)))


def _close_all(s: ZState, c: Any) -> ZState:
    """RESET-5 / DESTROY-1: every port 1 .. valid-1 of c closed; every interdomain
    port of another domain bound to c becomes unbound toward c."""
    d, p, v, q = z3.BitVec("d_l", 16), z3.BitVec("p_l", 32), z3.BitVec("v_l", 32), \
        z3.BitVec("q_l", 32)
    mine = z3.And(d == c, p != bv(0), z3.ULT(p, s.valid[c]))
    closed = z3.And(mine, s.st[d, p] != st_val(FREE))
    peer = z3.And(d != c, s.st[d, p] == st_val(INTERDOMAIN), s.rdom[d, p] == c)
    vp = s.v2e[d, v, q]
    v_gone = z3.And(d == c, vp != bv(0), z3.ULT(vp, s.valid[c]),
                    s.st[c, vp] == st_val(VIRQ), s.virq[c, vp] == q, vkey(s, c, vp) == v)
    return replace(
        s,
        st=z3.Lambda([d, p], z3.If(mine, st_val(FREE), z3.If(peer, st_val(UNBOUND),
                                                               s.st[d, p]))),
        rdom=z3.Lambda([d, p], z3.If(peer, c, s.rdom[d, p])),
        vcpu=z3.Lambda([d, p], z3.If(mine, bv(0), s.vcpu[d, p])),
        static=z3.Lambda([d, p], z3.If(mine, z3.BoolVal(False), s.static[d, p])),
        pend=z3.Lambda([d, p], z3.If(z3.And(closed, z3.Not(s.fifo[c]),
                                            s.st[d, p] != st_val(RESERVED)),
                                     z3.BoolVal(False), s.pend[d, p])),
        v2e=z3.Lambda([d, v, q], z3.If(v_gone, bv(0, PORT), s.v2e[d, v, q])))


def _close_all_finite(s: ZState, c: Any, doms: tuple[int, ...], ports: tuple[int, ...]
                      ) -> ZState:
    """_close_all over a finite universe of domains x ports (bounded search: every
    port that can be in use lies in it; VIRQ slots are left alone, no VIRQ is bound
    there)."""
    st, rdom, vcpu, static, pend = s.st, s.rdom, s.vcpu, s.static, s.pend
    for dv in doms:
        d = z3.BitVecVal(dv, DOM)
        for pv in ports:
            if pv == 0:
                continue
            p = bv(pv)
            t = s.st[d, p]
            mine = z3.And(d == c, z3.ULT(p, s.valid[c]))
            peer = z3.And(d != c, t == st_val(INTERDOMAIN), s.rdom[d, p] == c)
            st = z3.Store(st, d, p, z3.If(mine, st_val(FREE), z3.If(peer, st_val(UNBOUND), t)))
            rdom = z3.Store(rdom, d, p, z3.If(peer, c, s.rdom[d, p]))
            vcpu = z3.Store(vcpu, d, p, z3.If(mine, bv(0), s.vcpu[d, p]))
            static = z3.Store(static, d, p, z3.And(z3.Not(mine), s.static[d, p]))
            clr = z3.And(mine, t != st_val(FREE), z3.Not(s.fifo[c]))
            pend = z3.Store(pend, d, p, z3.And(z3.Not(clr), s.pend[d, p]))
    return replace(s, st=st, rdom=rdom, vcpu=vcpu, static=static, pend=pend)


def step(s: ZState, op: str, c: Any, a: Args, ch: Choice, xsm: str,
         bound: int | None = None, exact: bool = False,
         universe: tuple[tuple[int, ...], tuple[int, ...]] | None = None) -> Step:
    """One call `op` by caller c. `exact` adds get_free_port's "lowest" (quantified
    unless `bound` enumerates it); the induction proofs leave it out (any free port:
    a sound over-approximation)."""
    K = _Cases()
    lp, nd = ch.lp, ch.nd
    side: Any = z3.BoolVal(True)
    post: ZState = s
    if op == "send":
        p = a.port
        K.fail(z3.Not(port_valid(s, c, p)), EINVAL)
        t = s.st[c, p]
        K.fail(z3.Not(z3.Or(t == st_val(INTERDOMAIN), t == st_val(IPI),
                            t == st_val(UNBOUND))), EINVAL)
        post = raise_(s, s.rdom[c, p], s.rport[c, p]).ite(
            t == st_val(INTERDOMAIN), raise_(s, c, p).ite(t == st_val(IPI), s))
    elif op == "close":
        p = a.port
        K.fail(z3.Not(port_valid(s, c, p)), EINVAL)
        K.fail(z3.Not(usable(s, c, p)), EINVAL)
        post = _close_one(s, c, p)
    elif op == "unmask":
        p = a.port
        K.fail(z3.Not(port_valid(s, c, p)), EINVAL)
        on = z3.And(usable(s, c, p), z3.Not(s.fifo[c]))
        post = replace(s, mask=z3.Store(s.mask, c, p, z3.And(s.mask[c, p], z3.Not(on))))
    elif op == "status":
        d = resolve(c, a.dom)
        K.fail(z3.Not(s.live[d]), ESRCH)
        K.fail(z3.Not(port_valid(s, d, a.port)), EINVAL)
        K.fail(z3.Not(target(s, c, d)), EPERM)
    elif op in ("alloc_unbound", "bind_interdomain", "bind_ipi", "bind_virq"):
        d = resolve(c, a.dom) if op == "alloc_unbound" else c
        ok = alloc_ok(s, d, lp)
        if exact:
            side = lowest_free(s, d, lp, ok, bound)
        g = grow(s, d, lp)
        if op == "alloc_unbound":
            r = resolve(c, a.remote_dom)
            K.fail(z3.Not(s.live[d]), ESRCH)
            K.fail(z3.Not(ok), ENOSPC)
            if xsm == "silo":
                K.fail(z3.Not(s.live[r]), ESRCH, g)
                K.fail(z3.Not(silo_check(s, c, d, r)), EPERM, g)
            K.fail(z3.Not(target(s, c, d)), EPERM, g)
            post = replace(g, st=z3.Store(g.st, d, lp, st_val(UNBOUND)),
                           rdom=z3.Store(g.rdom, d, lp, r),
                           static=z3.Store(g.static, d, lp, z3.BoolVal(False)))
        elif op == "bind_interdomain":
            r, rp = resolve(c, a.remote_dom), a.remote_port
            K.fail(z3.Not(s.live[r]), ESRCH)
            K.fail(z3.Not(ok), ENOSPC)
            K.fail(z3.Or(z3.Not(port_valid(g, r, rp)), s.st[r, rp] != st_val(UNBOUND),
                         s.rdom[r, rp] != c), EINVAL, g)
            if xsm == "silo":
                K.fail(z3.Not(silo_check(s, c, c, r)), EPERM, g)
            b = replace(g, st=z3.Store(g.st, c, lp, st_val(INTERDOMAIN)),
                        rdom=z3.Store(g.rdom, c, lp, r), rport=z3.Store(g.rport, c, lp, rp),
                        static=z3.Store(g.static, c, lp, z3.BoolVal(False)))
            b = replace(b, st=z3.Store(b.st, r, rp, st_val(INTERDOMAIN)),
                        rdom=z3.Store(b.rdom, r, rp, c), rport=z3.Store(b.rport, r, rp, lp))
            post = raise_(b, c, lp)
        elif op == "bind_ipi":
            K.fail(z3.UGE(a.vcpu, s.nvcpu[c]), ENOENT)
            K.fail(z3.Not(ok), ENOSPC)
            post = replace(g, st=z3.Store(g.st, c, lp, st_val(IPI)),
                           vcpu=z3.Store(g.vcpu, c, lp, a.vcpu))
        else:
            q, v = a.virq, a.vcpu
            K.fail(z3.UGE(q, bv(NR_VIRQS)), EINVAL)
            K.fail(z3.And(is_global(q), v != bv(0)), EINVAL)
            K.fail(z3.UGE(v, s.nvcpu[c]), ENOENT)
            K.fail(s.v2e[c, v, q] != bv(0, PORT), EEXIST)
            K.fail(z3.Not(ok), ENOSPC)
            post = replace(g, st=z3.Store(g.st, c, lp, st_val(VIRQ)),
                           vcpu=z3.Store(g.vcpu, c, lp, v), virq=z3.Store(g.virq, c, lp, q),
                           v2e=z3.Store(g.v2e, c, v, q, lp))
    elif op == "bind_vcpu":
        p, v = a.port, a.vcpu
        K.fail(z3.UGE(v, s.nvcpu[c]), ENOENT)
        K.fail(z3.Not(port_valid(s, c, p)), EINVAL)
        t = s.st[c, p]
        K.fail(z3.Not(z3.Or(z3.And(t == st_val(VIRQ), is_global(s.virq[c, p])),
                            t == st_val(UNBOUND), t == st_val(INTERDOMAIN))), EINVAL)
        post = replace(s, vcpu=z3.Store(s.vcpu, c, p, v))
    elif op in ("reset", "reset_cont"):
        d = resolve(c, a.dom)
        K.fail(z3.Not(s.live[d]), ESRCH)
        K.fail(z3.Not(target(s, c, d)), EPERM)
        K.fail(d != c, EINVAL)
        if op == "reset_cont":
            K.fail(z3.BoolVal(True), EBUSY)
        else:
            r = _close_all(s, c) if universe is None else _close_all_finite(s, c, *universe)
            post = replace(r, fifo=z3.Store(r.fifo, c, z3.BoolVal(False)))
    elif op == "destroy":
        r = _close_all(s, c) if universe is None else _close_all_finite(s, c, *universe)
        post = replace(r, live=z3.Store(r.live, c, z3.BoolVal(False)),
                       ctrl=z3.Store(r.ctrl, c, z3.BoolVal(False)))
    elif op in ("mask", "clear"):
        p = a.port
        K.fail(z3.And(s.fifo[c], nd), EINVAL)  # FIFO: no event word (not modelled)
        K.fail(z3.And(z3.Not(s.fifo[c]), z3.UGE(p, bv(N2L))), EINVAL)
        if op == "mask":
            post = s.ite(s.fifo[c], replace(s, mask=z3.Store(s.mask, c, p, True)))
        else:
            post = s.ite(s.fifo[c], replace(s, pend=z3.Store(s.pend, c, p, False)))
    elif op == "ack":
        K.fail(z3.UGE(a.vcpu, s.nvcpu[c]), EINVAL)
    elif op == "init_control":
        K.fail(z3.UGE(a.vcpu, s.nvcpu[c]), ENOENT)
        K.fail(z3.Or(z3.UGT(a.offset, bv(4096 - 72)), (a.offset & 7) != 0), EINVAL)
        K.fail(z3.And(s.fifo[c], nd), EINVAL)  # a second control block for the vCPU
        post = replace(s, fifo=z3.Store(s.fifo, c, True), fused=z3.Store(s.fused, c, True))
    elif op == "expand_array":
        K.fail(z3.Not(s.fifo[c]), EOPNOTSUPP)
        K.fail(nd, ENOSPC)
    elif op == "set_priority":
        p = a.port
        K.fail(z3.Not(port_valid(s, c, p)), EINVAL)
        K.fail(z3.Not(s.fifo[c]), ENOSYS)
        K.fail(z3.Not(usable(s, c, p)), EACCES)
        K.fail(z3.UGT(a.priority, bv(15)), EINVAL)
    else:
        raise ValueError(f"unknown operation {op!r}")
    post, rc = K.done(s, post)
    running = s.live[c]
    post = post.ite(running, s)
    rc = z3.If(running, rc, bv(NOT_RUN))
    return Step(post, rc, side, lp)


def step_any(s: ZState, opcode: Any, c: Any, a: Args, ch: Choice, xsm: str,
             ops: tuple[str, ...], bound: int | None = None, exact: bool = False,
             universe: tuple[tuple[int, ...], tuple[int, ...]] | None = None) -> Step:
    """A symbolic operation: opcode i (an Int) is ops[i]."""
    steps = [step(s, op, c, a, ch, xsm, bound, exact, universe) for op in ops]
    post, rc, side = steps[-1].post, steps[-1].rc, steps[-1].side
    for i in range(len(ops) - 2, -1, -1):
        cond = opcode == i
        post = steps[i].post.ite(cond, post)
        rc = z3.If(cond, steps[i].rc, rc)
        side = z3.If(cond, steps[i].side, side)
    return Step(post, rc, side, ch.lp)


# -- concrete states (runtime.arrays) as Z3 terms ----------------------------------

def concrete(arr: dict[str, dict[tuple[int, ...], int]]) -> ZState:
    """The Z3 image of runtime.arrays(): constant arrays with the sparse entries
    stored (missing entries: 0 / false / free, as arrays() says)."""
    B = z3.BoolSort()

    def build(name: str, idx: tuple[z3.SortRef, ...], val: z3.SortRef) -> Any:
        if val == B:
            dflt: Any = z3.BoolVal(False)
        else:
            dflt = z3.BitVecVal(0, val)
        # multi-index K: nest a Lambda returning the default
        vs = [z3.BitVec(f"k{i}", srt) for i, srt in enumerate(idx)]
        a: Any = z3.Lambda(vs, dflt)
        for key, v in sorted(arr.get(name, {}).items()):
            ks = [z3.BitVecVal(k, srt) for k, srt in zip(key, idx, strict=True)]
            a = z3.Store(a, *ks, z3.BoolVal(bool(v)) if val == B else z3.BitVecVal(v, val))
        return a

    st_arr = build("st", (DOM, PORT), STS)
    return ZState(
        live=build("live", (DOM,), B), ctrl=build("ctrl", (DOM,), B),
        nvcpu=build("nvcpu", (DOM,), WORD), maxport=build("maxport", (DOM,), WORD),
        valid=build("valid", (DOM,), WORD), fifo=build("fifo", (DOM,), B),
        fused=build("fused", (DOM,), B), st=st_arr, rdom=build("rdom", (DOM, PORT), DOM),
        rport=build("rport", (DOM, PORT), PORT), vcpu=build("vcpu", (DOM, PORT), WORD),
        virq=build("virq", (DOM, PORT), WORD), static=build("static", (DOM, PORT), B),
        bpd=build("bootpeer_dom", (DOM, PORT), DOM),
        bpp=build("bootpeer_port", (DOM, PORT), PORT), pend=build("pend", (DOM, PORT), B),
        mask=build("mask", (DOM, PORT), B), v2e=build("v2e", (DOM, WORD, WORD), PORT))


def args_of(call_args: dict[str, int]) -> Args:
    """Concrete Args from a trace call's args (missing ones are 0)."""
    def g(k: str, w: int) -> z3.BitVecRef:
        return z3.BitVecVal(call_args.get(k, 0), w)
    return Args(dom=g("dom", 16), port=g("port", 32), remote_dom=g("remote_dom", 16),
                remote_port=g("remote_port", 32), vcpu=g("vcpu", 32), virq=g("virq", 32),
                offset=g("offset", 32), priority=g("priority", 32))
