"""`fix`: the fewest port changes (then the lowest ports) that make a config certify.

Ports are per domain, so every domain with a port counterexample is repaired on its
own with Z3's `Optimize`: one variable per port cell of the domain's channel ends,
soft "keep the written value" (first objective: fewest changes), then the sum of
the ports (second objective: lowest ports). A side-B port 0 may stay 0 (Xen binds
the lowest free port, which the model works out in walk order); a port is never
changed *to* 0. The result is checked again by the certifier before it is written.

The DTS is rewritten only in those cells, at their `Piece` spans: comments, layout
and everything else stay byte for byte. Problems no port can fix (a dangling
phandle, a missing domain, a peer that does not point back) are listed as what the
user must decide.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import z3

from .. import rules as R
from ..config import Config
from ..grammar.errors import InputError, Span
from . import certify, encode
from .facts import XENSTORE_PORT, Attempt, Facts, NodeFact, build

PORT_RULES = {R.EVT_PORT_RANGE, R.EVT_PORT_BUSY, R.EVT_PORT_XENSTORE, R.EVT_PORT_ZERO}


@dataclass(slots=True)
class Change:
    node: str
    span: Span
    old: int
    new: int


@dataclass(slots=True)
class RepairResult:
    status: str  # "ok" (nothing to fix) | "fixed" | "unfixable" | "unknown"
    changes: list[Change] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)
    text: str | None = None


def _first_attempts(f: Facts) -> list[Attempt]:
    """One attempt per channel: the pair as the walk first meets it."""
    seen: set[frozenset[int]] = set()
    out = []
    for at in f.attempts:
        k = frozenset((at.a, at.b))
        if k not in seen:
            seen.add(k)
            out.append(at)
    return out


class _SolverUnknown(Exception):
    """Optimize gave no answer (timeout): never to be read as "unfixable"."""


def _solve_domain(f: Facts, d: int, atts: list[Attempt], timeout_ms: int,
                  ) -> dict[int, int] | None:
    """New values for the port cells of domain d's channel ends (node index -> port)."""
    ctx = z3.Context()
    opt = z3.Optimize(ctx=ctx)
    if timeout_ms:
        opt.set("timeout", timeout_ms)
    hard: list[z3.BoolRef] = []  # the same constraints feed both stages
    df = f.domains[d]
    nodes = f.nodes
    var: dict[int, z3.ArithRef] = {}
    eff: list[tuple[int, z3.ArithRef]] = []  # (node, effective port) in walk order
    held: list[z3.ArithRef] = [z3.IntVal(XENSTORE_PORT, ctx)] if df.xenstore else []
    for at in atts:
        for side, i in (("A", at.a), ("B", at.b)):
            n = nodes[i]
            if n.dom != d or i in var:
                continue
            v = z3.Int(f"p{i}", ctx)
            var[i] = v
            hard += [v >= 0, v <= df.limit]
            if df.xenstore:
                hard.append(v != XENSTORE_PORT)
            if side == "A" or n.port != 0:
                hard.append(v >= 1)
            if side == "B" and n.port == 0:
                q = z3.Int(f"q{i}", ctx)
                cnt = [z3.If(z3.And(h >= 1, h < q), 1, 0) for h in held]
                # The lowest free port is at most one past the ports already held:
                # a small range keeps the counting constraint easy for the solver.
                hard.append(z3.Implies(v == 0, z3.And(
                    q >= 1, q <= df.limit, q <= len(held) + 1, *[h != q for h in held],
                    z3.Sum(*cnt, z3.IntVal(0, ctx)) == q - 1)))
                hard.append(z3.Implies(v != 0, q == v))
                e: z3.ArithRef = q
            else:
                e = v
            held.append(e)
            eff.append((i, e))
    if len(held) > 1:
        hard.append(z3.Distinct(*held))
    opt.add(*hard)
    # First objective: fewest changed cells (MaxSAT over "keep the written value").
    for i, v in var.items():
        opt.add_soft(v == nodes[i].port, 1, "keep")
    verdict = opt.check()
    if verdict == z3.unknown:
        raise _SolverUnknown(d)
    if verdict != z3.sat:
        return None
    m = opt.model()
    first = {i: int(m.eval(v).as_long()) for i, v in var.items()}
    # Second objective: the lowest ports for exactly those cells (the others fixed),
    # each cell in walk order taking the lowest value that still admits a solution.
    # (Optimize's arithmetic objective was slow here; this is a few cheap checks.)
    moved = [i for i in var if first[i] != nodes[i].port]
    sol = z3.Solver(ctx=ctx)
    if timeout_ms:
        sol.set("timeout", timeout_ms)
    sol.add(*hard)
    for i, v in var.items():
        if i not in moved:
            sol.add(v == nodes[i].port)
        else:
            sol.add(v != nodes[i].port)
    for i in moved:
        for cand in range(1, df.limit + 1):
            if sol.check(var[i] == cand) == z3.sat:
                sol.add(var[i] == cand)
                first[i] = cand
                break
    return first


def _rewrite(source: str, edits: list[tuple[Span, int, int]]) -> str:
    """Replace each port literal at its span, keeping its base (hex stays hex)."""
    lines = source.split("\n")
    starts = [0]
    for ln in lines:
        starts.append(starts[-1] + len(ln) + 1)
    out = source
    for span, old, new in sorted(edits, key=lambda e: (e[0].line, e[0].column), reverse=True):
        a = starts[span.line - 1] + span.column - 1
        b = starts[span.end_line - 1] + span.end_column - 1
        lit = out[a:b]
        try:
            value = int(lit, 0)
        except ValueError:
            value = None
        if value != old:
            raise InputError(span, f"cannot rewrite this port cell ({lit!r} is not a plain "
                             f"number): change it to {new} by hand")
        text = f"{new:#x}" if lit.lower().startswith("0x") else str(new)
        out = out[:a] + text + out[b:]
    return out


def repair(cfg: Config, timeout: float = 0.0) -> RepairResult:
    timeout_ms = certify.timeout_ms(timeout)
    f = build(cfg)
    obs = encode.obligations(f)
    reports = certify.run(obs, timeout, cores=False)
    res = RepairResult("ok")
    if any(r.status == "unknown" for r in reports):
        res.status = "unknown"
        res.summary.append("fix: the solver did not answer (timeout); nothing written")
        return res
    blockers = [(r.rule, v) for r in reports for v in r.verdicts
                if v.answer == "sat" and r.rule not in PORT_RULES]
    if blockers:
        res.status = "unfixable"
        res.summary.append("fix: no port change can fix this config; you must decide:")
        for rule, v in blockers:
            cx = v.counterexample
            where = f" ({cx.cites[0]})" if cx is not None and cx.cites else ""
            msg = cx.message if cx is not None else rule
            res.summary.append(f"  [{rule}] {msg}{where}: {_decide(rule)}")
        return res
    bad_doms: set[int] = set()
    for r in reports:
        for v in r.verdicts:
            if v.answer == "sat" and v.ob.scope.startswith("d"):
                bad_doms.add(int(v.ob.scope[1:].split(" ", 1)[0]))
    if not bad_doms:
        res.summary.append("fix: the config already certifies; nothing to change")
        res.text = None
        return res
    atts = _first_attempts(f)
    for at in atts:  # EVT-PORT-ZERO is checked in side B's domain; the fix is on side A
        if f.nodes[at.a].port == 0 and f.nodes[at.b].dom in bad_doms:
            bad_doms.add(f.nodes[at.a].dom)
    if cfg.tree.is_dtb:
        raise InputError(Span(cfg.tree.source, 1, 1), "fix rewrites DTS source; give the .dts")
    source = Path(cfg.tree.source).read_text(encoding="utf-8")
    # A changed port can let a channel through that used to fail, and that channel's
    # other end may then collide in its own domain: widen the set and solve again.
    for _ in range(len(f.domains) + 1):
        new_ports: dict[int, int] = {}
        for d in sorted(bad_doms):
            try:
                got = _solve_domain(f, d, atts, timeout_ms)
            except _SolverUnknown:
                res.status = "unknown"
                res.changes = []
                res.summary.append(f"fix: the solver did not answer for d{d} "
                                   f"({f.domains[d].name}) (timeout); nothing written")
                return res
            if got is None:
                res.status = "unfixable"
                res.summary.append(f"fix: d{d} ({f.domains[d].name}) has more channel ends "
                                   f"than free ports (1..{f.domains[d].limit}); remove "
                                   "channels")
                return res
            new_ports.update(got)
        res.changes = []
        text = _rewrite(source, _edits(cfg, f, new_ports, res))
        still = _bad_domains(cfg, text)
        if not still:
            res.text = text
            break
        if still <= bad_doms or -1 in still:
            break
        bad_doms |= still
    if res.text is None:
        res.status = "unknown"
        res.changes = []
        res.summary.append("fix: no certifying repair found; nothing written")
        return res
    res.status = "fixed"
    res.summary.append(f"fix: {len(res.changes)} port change(s):")
    for c in res.changes:
        res.summary.append(f"  {c.span}: {c.node}: port {c.old} -> {c.new}")
    return res


def _decide(rule: str) -> str:
    return {
        R.XEN_PEER_UNKNOWN: "point the phandle at the intended peer evtchn node, or add it",
        R.XEN_PEER_ASYMMETRIC: "decide which of the nodes naming this peer is its partner",
        R.XEN_PROP_MISSING: "write xen,evtchn = <PORT &peer> on the node",
        R.XEN_PROP_SHORT: "write both cells: <PORT &peer>",
        R.XEN_PEER_SELF: "point the node at its real peer",
        R.XEN_PEER_ROOT: "point the node at an evtchn node inside a domain",
        R.XEN_DOMAIN_UNKNOWN: "move the node into a domain Xen creates (or add a dom0 kernel)",
        R.XEN_NOT_WALKED: "move the node directly inside its xen,domain node",
        R.XEN_COMPAT: 'write compatible = "xen,evtchn-v1"',
        R.DOM_XENSTORE: 'write xen,enhanced = "no-xenstore" or add a dom0',
        R.SEED_UNMERGED: "rewrite the seed node as two xen,evtchn-v1 nodes",
    }.get(rule, "edit the config by hand")


def _edits(cfg: Config, f: Facts, new_ports: dict[int, int],
           res: RepairResult) -> list[tuple[Span, int, int]]:
    edits: list[tuple[Span, int, int]] = []
    for i, new in sorted(new_ports.items()):
        n: NodeFact = f.nodes[i]
        if new == n.port:
            continue
        prop = n.node.properties.get("xen,evtchn")
        piece = prop.piece_at(0) if prop is not None else None
        if piece is None:
            raise InputError(n.node.span, f"{n.node.path}: the port cell has no source "
                             f"position; change it to {new} by hand")
        if piece.span.file != cfg.tree.source:
            raise InputError(piece.span, f"this port cell is not in {cfg.tree.source}; "
                             f"change it to {new} in that file")
        edits.append((piece.span, n.port, new))
        res.changes.append(Change(n.node.path, piece.span, n.port, new))
    return edits


def _bad_domains(cfg: Config, text: str) -> set[int]:
    """Read the rewritten source again (same Xen version and dialect) and return the
    domains whose obligations still fail ({-1} for any other failure)."""
    from ..grammar.dts import parse_dts

    tree = parse_dts(text.encode("utf-8"), cfg.tree.source)
    again = Config.from_tree(tree, cfg.profile, cfg.dialect_mode)
    reports = certify.run(encode.obligations(build(again)), cores=False)
    bad: set[int] = set()
    for r in reports:
        for v in r.verdicts:
            if v.answer != "unsat":
                scope = v.ob.scope
                bad.add(int(scope[1:].split(" ", 1)[0]) if scope.startswith("d") else -1)
    return bad
