"""Bounded search for attacks on a concrete config (`prove FILE --steps K --policy P`).

From the concrete booted state of FILE, the Z3 transition relation is unrolled K
times; every step is one call by any running domain, any operation, any
arguments. Two goals:

* SIGNAL: a send by a domain c on an interdomain port whose peer e != c is a pair
  the policy does not allow, raising e's 2-level pending bit 0 -> 1;
* STATIC: a call by a third domain (neither end) after which a static channel of
  the boot is no longer joined to its boot peer (closed, re-bound, torn down).

Depth k = 1, 2, ..., K is tried in turn, so the trace found is a shortest one. A
trace found is replayed with the refimpl's `run` before it is reported: an attack
the refimpl does not confirm is reported as unknown, never as an attack. When none
exists within K, the claim is extended to any number of steps by induction:
STATIC by STEP-STATIC-KEEP (invariants.py) and the config's base case; SIGNAL by
the policy invariant "no interdomain channel joins a forbidden pair", checked
inductive for this config's domains and privileges (it is not when a privileged or
cooperating domain may create such a channel).

Bounds (spec/proofs-runtime.md): callers range over the booted domains (a caller
that is not running changes nothing, STEP-NOT-RUNNING); arguments are unrestricted
bit-vectors; ports are not enumerated, except that get_free_port's "lowest free
port" is stated over 1..N with N = (most ports any domain uses at boot) + K + 1,
which is exact because a step allocates at most one port. The FIFO operations are
left out: they change no port's state or peer, so they cannot enable either goal
(under FIFO a send still happens, only the bits it sets differ).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from typing import Any

import z3

from evtchn_spec.grammar.errors import Span
from evtchn_spec.refimpl.boot import BootResult, boot
from evtchn_spec.refimpl.policy import Policy
from evtchn_spec.refimpl.runtime import OPS, Call, arrays, boot_peers, run

from . import invariants as I
from . import transition as T
from .certify import timeout_ms as to_ms

# Operations that can matter for the goals: the others change nothing (status, ack,
# reset_cont), or only fields no goal and no later check reads (mask, unmask,
# bind_vcpu: mask bits and notify vCPUs), or are replaceable by one kept (bind_virq
# takes the lowest free port exactly as bind_ipi does), or are FIFO-only (see above).
SEARCH_OPS = ("send", "close", "alloc_unbound", "bind_interdomain", "bind_ipi", "reset",
              "clear", "destroy")

_DOM0_ALIASES = ("domain-0", "dom0", "d0")


def _keys(domid: int, name: str) -> set[str]:
    """The names a policy entry may use for a domain (policy.py's normal form)."""
    out = {f"#{domid}"}
    if name:
        n = name.strip()
        out.add("#0" if n.lower() in _DOM0_ALIASES else f"#{int(n)}" if n.isdigit() else n)
    return out


def forbidden_pairs(res: BootResult, policy: Policy) -> set[tuple[int, int]]:
    """Ordered pairs (a, b), a != b, of booted domains the policy does not allow."""
    names = {d.domid: d.name for d in res.domains}
    live = sorted(res.state.domains)
    out = set()
    for a in live:
        for b in live:
            if a != b and not any(policy.allows(x, y) for x in _keys(a, names.get(a, ""))
                                  for y in _keys(b, names.get(b, ""))):
                out.add((a, b))
    return out


@dataclass(frozen=True)
class Attack:
    goal: str  # "signal" | "static"
    calls: list[dict[str, Any]]  # the trace (spec/trace.md)
    claim: str
    confirmed: bool  # the refimpl's run does what the claim says


@dataclass(frozen=True)
class SearchResult:
    status: str  # "attack" | "none" | "unknown"
    steps: int  # the bound K searched (or the depth of the attack)
    attack: Attack | None
    any_length: dict[str, str]  # goal -> proved | not inductive | unknown
    seconds: float
    forbidden: list[tuple[int, int]]


def _snapshot(res: BootResult) -> dict[str, dict[tuple[int, ...], int]]:
    a: dict[str, dict[tuple[int, ...], int]] = arrays(res.state, boot_peers(res))
    a["fused"] = {(d,): 1 for d, dom in res.state.domains.items() if dom.fifo_used}
    return a


def _forbid(pairs: set[tuple[int, int]], a: Any, b: Any) -> Any:
    return z3.Or(z3.BoolVal(False), *[z3.And(a == x, b == y) for x, y in sorted(pairs)])


def _trace_of(model: z3.ModelRef, steps: list[tuple[Any, Any, T.Args]]) -> list[dict[str, Any]]:
    calls = []
    for c, opc, a in steps:
        op = SEARCH_OPS[model.eval(opc, True).as_long()]
        vals = {"dom": a.dom, "port": a.port, "remote_dom": a.remote_dom,
                "remote_port": a.remote_port, "vcpu": a.vcpu, "virq": a.virq,
                "offset": a.offset, "priority": a.priority}
        args = {spec.name: model.eval(vals[spec.name], True).as_long()
                for spec in OPS[op].args if spec.name in vals}
        calls.append({"caller": model.eval(c, True).as_long(), "op": op, "args": args})
    return calls


def replay(res_factory: Any, calls: list[dict[str, Any]], xsm: str) -> dict[str, Any]:
    """The refimpl's `run` document for the trace, on a fresh boot."""
    res = res_factory()
    res.state.xsm = xsm
    trace = [Call(c["caller"], c["op"], dict(c["args"]), Span("<attack>", 1, 1))
             for c in calls]
    doc: dict[str, Any] = run(res, trace)
    return doc


def confirm_signal(doc: dict[str, Any], pairs: set[tuple[int, int]]) -> bool:
    """The last call of the run is a successful send raising a pending bit 0 -> 1
    on a port of a domain its caller may not signal."""
    last = doc["calls"][-1]
    c = last["caller"]
    return bool(last["op"] == "send" and last["rc"] == 0 and any(
        ch.get("field") == "pending" and ch.get("from") is False and ch.get("to") is True
        and (c, ch["dom"]) in pairs for ch in last["changes"]))


def search(res_factory: Any, policy: Policy, max_steps: int, xsm: str = "silo",
           timeout_ms: int = 60000) -> SearchResult:
    """The bounded search; `res_factory` boots FILE afresh (each replay needs its
    own state)."""
    t0 = time.perf_counter()
    res = res_factory()
    res.state.xsm = xsm
    pairs = forbidden_pairs(res, policy)
    peers = boot_peers(res)
    arr = _snapshot(res)
    live = sorted(res.state.domains)
    # first the claims for any number of steps: a goal excluded by an inductive
    # invariant that holds at boot needs no unrolling (no attack of any length)
    any_length = {"static": _static_any_length(arr, xsm),
                  "signal": _signal_any_length(arr, pairs, live, xsm)}
    todo = [g for g, v in any_length.items() if v != "proved"]
    used = max([sum(1 for (d, p) in arr["st"] if d == dom and p != 0) for dom in live] or [0])
    bound = used + max_steps + 1
    ports = tuple(sorted({p for (_d, p) in arr["st"]} | set(range(1, bound + 1))))
    universe = (tuple(live), ports)
    s = T.concrete(arr)
    solver = z3.Solver()
    solver.set("timeout", timeout_ms)
    steps: list[tuple[Any, Any, T.Args]] = []
    status = "none"
    attack: Attack | None = None
    for k in range(max_steps if todo else 0):
        c, opc, a = z3.BitVec(f"c{k}", 16), z3.Int(f"op{k}"), T.Args.fresh(str(k))
        ch = T.Choice.fresh(str(k))
        solver.add(z3.Or(*[c == d for d in live]), opc >= 0, opc < len(SEARCH_OPS),
                   z3.Not(ch.nd))
        stp = T.step_any(s, opc, c, a, ch, xsm, SEARCH_OPS, bound=bound, exact=True,
                         universe=universe)
        solver.add(stp.side)
        # arguments outside these sets only make the call fail (a stutter step, so a
        # shorter trace exists) or are equivalent to one inside (vCPU 0)
        doms = [T.bv(d, T.DOM) for d in (*live, T.DOMID_SELF)]
        solver.add(z3.Or(*[a.port == T.bv(x) for x in ports]),
                   z3.Or(*[a.remote_port == T.bv(x) for x in ports]),
                   z3.Or(*[a.dom == x for x in doms]), z3.Or(*[a.remote_dom == x for x in doms]),
                   a.vcpu == T.bv(0))
        steps.append((c, opc, a))
        t = stp.post
        p = a.port
        e, q = s.rdom[c, p], s.rport[c, p]
        signal = z3.And(opc == SEARCH_OPS.index("send"), T.port_valid(s, c, p),
                        s.st[c, p] == T.st_val(T.INTERDOMAIN), e != c, _forbid(pairs, c, e),
                        z3.Not(s.pend[e, q]), z3.Not(s.fifo[e]), t.pend[e, q])
        static = z3.Or(z3.BoolVal(False), *[
            z3.And(I.intact(s, T.bv(d, T.DOM), T.bv(pp)),
                   z3.Not(I.intact(t, T.bv(d, T.DOM), T.bv(pp))),
                   c != d, c != peers[(d, pp)][0]) for d, pp in sorted(peers)])
        for goal, g in (("signal", signal), ("static", static)):
            if goal not in todo:
                continue
            solver.push()
            solver.add(g)
            r = solver.check()
            if r == z3.sat:
                calls = _trace_of(solver.model(), steps)
                solver.pop()
                attack = _confirmed(res_factory, calls, goal, pairs, peers, xsm)
                status = "attack" if attack.confirmed else "unknown"
                break
            solver.pop()
            if r != z3.unsat:
                status = "unknown"
        if attack is not None:
            break
        s = t
    return SearchResult(status, len(steps) if attack else max_steps, attack, any_length,
                        time.perf_counter() - t0, sorted(pairs))


def _confirmed(res_factory: Any, calls: list[dict[str, Any]], goal: str,
               pairs: set[tuple[int, int]], peers: dict[tuple[int, int], tuple[int, int]],
               xsm: str) -> Attack:
    doc = replay(res_factory, calls, xsm)
    last = calls[-1]
    if goal == "signal":
        ok = confirm_signal(doc, pairs)
        claim = (f"d{last['caller']} signals a domain the policy does not allow it to "
                 f"signal (send on port {last['args'].get('port')})")
    else:
        prev = replay(res_factory, calls[:-1], xsm)
        before = prev["final"]["domains"] if prev["final"] else prev["initial"]["domains"]
        ok = _static_broken(before, doc["final"]["domains"], last["caller"], peers)
        claim = f"d{last['caller']}, not an end, breaks a static channel ({last['op']})"
    return Attack(goal, calls, claim, ok)


def _static_broken(before: dict[str, Any], after: dict[str, Any], c: int,
                   peers: dict[tuple[int, int], tuple[int, int]]) -> bool:
    def joined(doms: dict[str, Any], d: int, p: int) -> bool:
        e, q = peers[(d, p)]
        for port in doms.get(str(d), {}).get("ports", []):
            if port["port"] == p:
                return bool(port["status"] == "interdomain" and port.get("remote_dom") == e
                            and port.get("remote_port") == q and port["static"])
        return False

    return any(joined(before, d, p) and not joined(after, d, p)
               and c not in (d, peers[(d, p)][0]) for d, p in peers)


def _config_facts(s: T.ZState, arr: dict[str, dict[tuple[int, ...], int]],
                  live: list[int]) -> list[Any]:
    """What every reachable state of this config shares with its boot state: only
    booted domains live, privileges and vCPU counts as booted."""
    d = z3.BitVec("d_cfg", 16)
    boot = T.concrete(arr)
    return [z3.ForAll([d], z3.Implies(s.live[d], z3.Or(*[d == x for x in live]))),
            s.ctrl == boot.ctrl]


def _static_any_length(arr: dict[str, dict[tuple[int, ...], int]], xsm: str) -> str:
    """STEP-STATIC-KEEP for every op (induction) + the base case of this config."""
    base = I.prove_concrete(arr)
    steps = [v for op in SEARCH_OPS for v in I.prove_step_props(op, xsm)
             if v.claim == "STEP-STATIC-KEEP"]
    steps += [v for op in SEARCH_OPS for v in I.prove_step(op, xsm)]
    vs = base + steps
    if all(v.status == "proved" for v in vs):
        return "proved"
    return "unknown" if any(v.status == "unknown" for v in vs) else "not inductive"


def policy_inv(s: T.ZState, pairs: set[tuple[int, int]], d: Any, p: Any) -> Any:
    """No interdomain channel joins a forbidden pair."""
    return z3.Implies(z3.And(s.live[d], s.st[d, p] == T.st_val(T.INTERDOMAIN)),
                      z3.Not(_forbid(pairs, d, s.rdom[d, p])))


def _signal_any_length(arr: dict[str, dict[tuple[int, ...], int]],
                       pairs: set[tuple[int, int]], live: list[int], xsm: str) -> str:
    s0 = T.concrete(arr)
    d0, p0 = z3.BitVec("d0_p", 16), z3.BitVec("p0_p", 32)
    solver = z3.Solver()
    solver.set("timeout", 30000)
    solver.add(z3.Not(policy_inv(s0, pairs, d0, p0)))
    r = solver.check()
    if r == z3.sat:
        return "not inductive"  # a forbidden channel exists at boot
    if r != z3.unsat:
        return "unknown"
    for op in SEARCH_OPS:
        s, c, a, ch, d0, p0, v0, q0 = I._vars("pol")
        stp = T.step(s, op, c, a, ch, xsm)
        solver = z3.Solver()
        solver.set("timeout", 30000)
        pts = I.points(s, c, a, ch.lp, d0, p0, v0, q0)
        solver.add(*I.assume(s, pts))
        solver.add(*[policy_inv(s, pairs, d, p) for d, p in pts.ports])
        solver.add(*_config_facts(s, arr, live))
        solver.add(z3.Not(policy_inv(stp.post, pairs, d0, p0)))
        r = solver.check()
        if r == z3.sat:
            return "not inductive"
        if r != z3.unsat:
            return "unknown"
    return "proved"


def cmd(args: Any, cfg: Any) -> int:
    """`prove FILE --invariants` / `prove FILE --steps K --policy POLICY`: exit 0
    proved / no attack, 1 attack / invariant fails, 3 unknown."""
    xsms = ("silo", "dummy") if args.xsm == "both" else (args.xsm,)
    timeout_ms = to_ms(args.timeout) if args.timeout else 60000
    worst = 0
    out: dict[str, Any] = {"format": 1, "file": cfg.tree.source}
    lines: list[str] = []

    def rank(status: str) -> int:
        return {"proved": 0, "none": 0, "counterexample": 1, "attack": 1}.get(status, 3)

    if args.invariants:
        res = boot(cfg)
        if res.outcome != "booted":
            print(f"{cfg.tree.source}: the boot panics; no run-time state to prove about",
                  file=sys.stderr)
            return 1
        vs = I.prove_all(xsms, timeout_ms) + I.prove_concrete(_snapshot(res),
                                                              timeout_ms=timeout_ms)
        statuses = {v.status for v in vs}
        st = ("counterexample" if "counterexample" in statuses
              else "unknown" if "unknown" in statuses else "proved")
        worst = max(worst, rank(st))
        out["invariants"] = {"status": st, "verdicts": [
            {"claim": v.claim, "op": v.op, "xsm": v.xsm, "status": v.status,
             "seconds": round(v.seconds, 6), "detail": v.detail} for v in vs]}
        lines.append(f"invariants ({', '.join(xsms)}; base: any boot state and "
                     f"{cfg.tree.source}): {st}")
        lines.append(I.summary(vs))
    if args.steps is not None:
        if not args.policy:
            print("evtchn-spec: --steps needs --policy POLICY.toml", file=sys.stderr)
            return 2
        pol = Policy.load(args.policy)
        res0 = boot(cfg)
        if res0.outcome != "booted":
            print(f"{cfg.tree.source}: the boot panics; nothing to attack", file=sys.stderr)
            return 1
        for xsm in xsms:
            r = search(lambda: boot(cfg), pol, args.steps, xsm, timeout_ms)
            worst = max(worst, rank(r.status))
            entry: dict[str, Any] = {"xsm": xsm, "status": r.status, "steps": r.steps,
                                     "any_length": r.any_length,
                                     "seconds": round(r.seconds, 6),
                                     "forbidden": [list(p) for p in r.forbidden]}
            if r.attack is not None:
                entry["attack"] = {"goal": r.attack.goal, "claim": r.attack.claim,
                                   "confirmed": r.attack.confirmed,
                                   "trace": {"format": 1, "calls": r.attack.calls}}
            out.setdefault("attacks", []).append(entry)
            if r.status == "attack" and r.attack is not None:
                lines.append(f"attack ({xsm}) in {r.steps} steps: {r.attack.claim}; "
                             "trace (replayed with run):")
                lines.append(json.dumps({"format": 1, "calls": r.attack.calls}, indent=1))
            elif r.status == "none":
                forever = all(v == "proved" for v in r.any_length.values())
                lines.append(f"no attack within {args.steps} steps ({xsm})"
                             + (", and for any number of steps (inductive)" if forever
                                else f"; any length: {r.any_length}")
                             + f" [{r.seconds:.2f} s]")
            else:
                lines.append(f"unknown ({xsm}): the solver gave up within {args.steps} "
                             f"steps (never reported as safe) [{r.seconds:.2f} s]")
    if args.format == "json":
        sys.stdout.write(json.dumps(out, indent=1) + "\n")
    else:
        sys.stdout.write("\n".join(lines) + "\n")
    return worst
