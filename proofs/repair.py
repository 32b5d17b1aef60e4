"""`fix`: the fewest port changes (then the lowest ports) that make a config certify.

Ports are per domain and, once every channel is made, a domain's ports only have to
be in range, off the xenstore port and distinct (a side-B port 0 binding the lowest
free port at its turn). So every domain is solved on its own, over its cells in the
order Xen allocates them, in two steps:

1. Which cells keep their written port: as many as possible. A cell with a port it
   can never keep (out of range, the xenstore port, 0 on side A) changes. Of the
   cells writing the same port at most one keeps it. A kept port-0 side B binds the
   lowest port that is free at its turn, and that must not be a port a later kept
   cell writes: it is, exactly when the kept port-0 cells so far and the explicit
   kept ports written before it under the next later kept port (its *wall*) fill
   every port below that wall (`_Pack`; the changed cells can always go above).
   Cells no such condition can bind keep the earliest of each port (pigeonhole: this
   is the most). The rest is a small pseudo-Boolean problem for Z3 `Solver`: the
   bound on kept cells is raised until Z3 proves one more impossible (`unsat`).
   Among the best choices the earliest cells keep theirs (the greatest keep vector in
   walk order), so the cell Xen rejects, the later of two, is the one changed.
2. The new values: each changed cell, in walk order, takes the lowest port that
   still admits a solution; that is the lowest free port, or the lowest above a wall
   a later kept port-0 cell would otherwise run into.

A port is never changed *to* 0. The result is checked again by the certifier before
it is written.

The DTS is rewritten only in those cells, at their `Piece` spans: comments, layout
and everything else stay byte for byte. Problems no port can fix (a dangling
phandle, a missing domain, a peer that does not point back) are listed as what the
user must decide.
"""

from __future__ import annotations

import bisect
import ctypes
from dataclasses import dataclass, field
from pathlib import Path

import z3

from evtchn_spec.grammar.dts import parse_dts
from evtchn_spec.grammar.errors import InputError, Span
from evtchn_spec.refimpl import rules as R
from evtchn_spec.refimpl.config import Config

from . import certify, encode, ports
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
    """Z3 gave no answer (timeout): never to be read as "unfixable"."""


@dataclass(frozen=True, slots=True)
class _Cell:
    """One port cell of a domain, in the order Xen allocates the domain's ports."""

    node: int  # node fact index
    old: int  # the written port
    zero: bool  # side B asking for port 0: it may stay 0 (Xen binds the lowest free port)
    valid: bool  # an explicit port the cell may keep: 1..limit, not the xenstore port


@dataclass(frozen=True, slots=True)
class _Pack:
    """A pigeonhole condition on the cells kept: if cell `z` (a port-0 side B) and the
    explicit cell `e` after it (port `wall`) are both kept, the kept cells in `count`
    (the port-0 cells up to z, the explicit cells before z under `wall`) fit below
    `wall`: at most `room` of them (`wall` - 1 ports, less the xenstore port)."""

    z: int
    e: int
    count: tuple[int, ...]
    room: int


def _cells(f: Facts, atts: list[Attempt]) -> dict[int, list[_Cell]]:
    """Each domain's cells, in the order Xen allocates the domain's ports."""
    out: dict[int, list[_Cell]] = {}
    seen: set[int] = set()
    for at in atts:
        for side, i in (("A", at.a), ("B", at.b)):
            n = f.nodes[i]
            if i in seen:
                continue
            seen.add(i)
            df = f.domains[n.dom]
            zero = side == "B" and n.port == 0
            valid = 1 <= n.port <= df.limit and not (df.xenstore and n.port == XENSTORE_PORT)
            out.setdefault(n.dom, []).append(_Cell(i, n.port, zero, valid))
    return out


def _packs(cells: list[_Cell], xs: int) -> list[_Pack]:
    """The conditions that can bind: (z, e) pairs where keeping every candidate in
    `count` would not fit. The excess `count - room` only falls as the wall rises,
    so per port-0 cell only walls up to a threshold are listed."""
    out: list[_Pack] = []
    by_value: dict[int, list[int]] = {}
    for p, c in enumerate(cells):
        if c.valid and not c.zero:
            by_value.setdefault(c.old, []).append(p)
    walls = sorted(by_value)
    below: list[int] = []  # distinct explicit values written before the current cell
    zeros: list[int] = []
    for t, c in enumerate(cells):
        if not c.zero:
            i = bisect.bisect_left(below, c.old)
            if c.valid and (i == len(below) or below[i] != c.old):
                below.insert(i, c.old)
            continue
        zeros.append(t)

        def excess(wall: int) -> int:
            return len(zeros) + bisect.bisect_left(below, wall) - (wall - 1 - xs)

        lo, hi = 1, max(by_value, default=0)  # the last wall with excess > 0, by bisection
        if hi < 1 or excess(1) <= 0:
            continue
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if excess(mid) > 0:
                lo = mid
            else:
                hi = mid - 1
        for wall in walls[:bisect.bisect_right(walls, lo)]:
            later = [e for e in by_value[wall] if e > t]
            if not later:
                continue
            count = tuple(zeros) + tuple(q for q in range(t) if not cells[q].zero
                                         and cells[q].valid and cells[q].old < wall)
            out += [_Pack(t, e, count, wall - 1 - xs) for e in later]
    return out


def _pb(ctx: z3.Context, lits: list[z3.BoolRef], coeffs: list[int], bound: int,
        at_least: bool = False) -> z3.BoolRef:
    """sum(coeffs * lits) <= bound (>= with at_least), built in one API call: z3py's
    PbLe coerces every literal in Python, which was most of the time on big domains."""
    n = len(lits)
    args = (z3.Ast * n)(*[b.as_ast() for b in lits])
    cs = (ctypes.c_int * n)(*coeffs)
    mk = z3.Z3_mk_pbge if at_least else z3.Z3_mk_pble
    return z3.BoolRef(mk(ctx.ref(), n, args, cs, bound), ctx)


def _keep(cells: list[_Cell], xs: int, timeout_ms: int) -> list[bool]:
    """The cells that keep their port: as many as possible, and among those choices the
    one that keeps the earliest cells (the greatest keep vector in walk order)."""
    keep = [c.valid or c.zero for c in cells]
    groups: dict[int, list[int]] = {}
    for p, c in enumerate(cells):
        if c.valid and not c.zero:
            groups.setdefault(c.old, []).append(p)
    packs = _packs(cells, xs)
    tied: set[int] = set()  # cells some binding pack names, and their value groups
    for pk in packs:
        tied.update((pk.z, pk.e, *pk.count))
    for p in list(tied):
        c = cells[p]
        if not c.zero:
            tied.update(groups[c.old])
    # Free value groups: at most one cell per port keeps it (pigeonhole), the earliest.
    for ps in groups.values():
        if ps[0] not in tied:
            for p in ps[1:]:
                keep[p] = False
    if not tied:
        return keep
    order = sorted(tied)
    ctx = z3.Context()
    sol = z3.Solver(ctx=ctx)
    if timeout_ms:
        sol.set("timeout", timeout_ms)
    k = {p: z3.Bool(f"k{p}", ctx) for p in order}
    for ps in groups.values():
        if ps[0] in tied and len(ps) > 1:
            sol.add(z3.AtMost(*[k[p] for p in ps], 1))
    for pk in packs:
        coef: dict[int, int] = {}
        for p in pk.count:
            coef[p] = coef.get(p, 0) + 1
        big = sum(coef.values())
        coef[pk.z] = coef.get(pk.z, 0) + big
        coef[pk.e] = coef.get(pk.e, 0) + big
        sol.add(_pb(ctx, [k[p] for p in coef], list(coef.values()), pk.room + 2 * big))
    everyone = [k[p] for p in order]

    def check(*extra: z3.BoolRef) -> bool:
        got = sol.check(*extra)
        if got == z3.unknown:
            raise _SolverUnknown()
        return bool(got == z3.sat)

    # The most cells kept: raise the bound until Z3 proves one more impossible.
    if not check():
        raise AssertionError("internal: keeping nothing is always possible")
    model = sol.model()
    best = sum(bool(z3.is_true(model.eval(k[p], True))) for p in order)
    while check(_pb(ctx, everyone, [1] * len(order), best + 1, at_least=True)):
        model = sol.model()
        best = sum(bool(z3.is_true(model.eval(k[p], True))) for p in order)
    sol.add(_pb(ctx, everyone, [1] * len(order), best, at_least=True))
    for p in order:  # earliest cells first: keep p if a best choice still does
        if z3.is_true(model.eval(k[p], True)):
            sol.add(k[p])
        elif check(k[p]):
            model = sol.model()
            sol.add(k[p])
        else:
            sol.add(z3.Not(k[p]))
        keep[p] = z3.is_true(model.eval(k[p], True))
    return keep


def _values(cells: list[_Cell], keep: list[bool], limit: int, xs: int) -> list[int]:
    """The new port cells: kept cells as written, each changed cell in walk order the
    lowest port that still lets every later port-0 cell get a port of its own."""
    n = len(cells)
    reserved = {c.old for c, kp in zip(cells, keep, strict=True) if kp and not c.zero}
    free = [p for p in range(1 + xs, limit + 1) if p not in reserved]  # sorted
    wall = [limit + 1] * (n + 1)  # lowest port kept by an explicit cell after position t
    for t in range(n - 1, -1, -1):
        c = cells[t]
        wall[t] = min(wall[t + 1], c.old) if keep[t] and not c.zero else wall[t + 1]
    later_zero = [t for t in range(n) if keep[t] and cells[t].zero]
    out: list[int] = []
    held: list[tuple[bool, int]] = []  # the ports the cells so far hold (bound ones too)
    zi = 0  # index in later_zero of the next kept port-0 cell
    for t, c in enumerate(cells):
        if keep[t] and not c.zero:
            out.append(c.old)
            held.append((True, c.old))
            continue
        if keep[t]:
            # Xen binds the lowest free port; the lowest free non-reserved one is it
            # exactly when it lies under the wall (no later kept cell wants a port below)
            if not free or not ports.lowest_free(ports.PY, free[0], held, limit=limit,
                                                 xenstore=xs == 1):
                raise AssertionError("internal: a kept port-0 cell has no port")
            held.append((True, free.pop(0)))
            zi += 1
            out.append(0)
            continue
        # The later kept port-0 cells take the lowest free ports in turn; the i-th of
        # them must stay under its wall. Where that is tight, this cell goes above it.
        low = 0
        for i, z in enumerate(later_zero[zi:], 1):
            if bisect.bisect_left(free, wall[z]) == i:
                low = max(low, wall[z])
        at = bisect.bisect_left(free, low)
        while at < len(free) and free[at] == c.old:
            at += 1
        if at >= len(free):
            raise AssertionError("internal: no port left for a changed cell")
        out.append(free.pop(at))
        held.append((True, out[-1]))
    return out


def _solve_domain(f: Facts, d: int, cells: list[_Cell], timeout_ms: int,
                  ) -> dict[int, int] | None:
    """New values for the port cells of domain d's channel ends (node index -> port),
    or None when the domain has more channel ends than ports."""
    df = f.domains[d]
    xs = 1 if df.xenstore else 0
    if len(cells) > df.limit - xs:
        return None
    keep = _keep(cells, xs, timeout_ms)
    vals = _values(cells, keep, df.limit, xs)
    return {c.node: v for c, v in zip(cells, vals, strict=True)}


def _rewrite(source: str, edits: list[tuple[Span, int, int]]) -> str:
    """Replace each port literal at its span, keeping its base (hex stays hex)."""
    lines = source.split("\n")
    starts = [0]
    for ln in lines:
        starts.append(starts[-1] + len(ln) + 1)
    cuts: list[tuple[int, int, str]] = []
    # checked from the last cell up (the first error named is the last bad cell, as
    # before); the text is then joined once, so the rewrite is linear in the source
    for span, old, new in sorted(edits, key=lambda e: (e[0].line, e[0].column), reverse=True):
        a = starts[span.line - 1] + span.column - 1
        b = starts[span.end_line - 1] + span.end_column - 1
        lit = source[a:b]
        try:
            value = int(lit, 0)
        except ValueError:
            value = None
        if value != old:
            raise InputError(span, f"cannot rewrite this port cell ({lit!r} is not a plain "
                             f"number): change it to {new} by hand")
        cuts.append((a, b, f"{new:#x}" if lit.lower().startswith("0x") else str(new)))
    out: list[str] = []
    at = 0
    for a, b, text in reversed(cuts):
        out += [source[at:a], text]
        at = b
    out.append(source[at:])
    return "".join(out)


def repair(cfg: Config, timeout: float = 0.0) -> RepairResult:
    timeout_ms = certify.timeout_ms(timeout)
    f = build(cfg)
    # The port rules are not discharged on the input: the repair decides them (a
    # domain keeps every port iff they already fit), and the certifier then checks
    # the result, or the input itself when nothing changes. On a broken tree their
    # counterexamples were most of the cost.
    reports = certify.run_groups(((r, g) for r, g in encode.rule_groups(f)
                                  if r not in PORT_RULES), timeout, cores=False,
                                 release=True)
    res = RepairResult("ok")
    if any(r.status == "unknown" for r in reports):
        res.status = "unknown"
        res.summary.append("fix: the solver did not answer (timeout); nothing written")
        return res
    blockers = [(r.rule, v) for r in reports for v in r.verdicts if v.answer == "sat"]
    if blockers:
        res.status = "unfixable"
        res.summary.append("fix: no port change can fix this config; you must decide:")
        for rule, v in blockers:
            cx = v.counterexample
            where = f" ({cx.cites[0]})" if cx is not None and cx.cites else ""
            msg = cx.message if cx is not None else rule
            res.summary.append(f"  [{rule}] {msg}{where}: {_decide(rule)}")
        return res
    atts = _first_attempts(f)
    # Every domain is solved, not only those with a counterexample: a changed port can
    # let a channel through that used to fail, and its other end must then fit in its
    # own domain too. A domain whose written ports already fit keeps them all (zero
    # changes is its optimum), so this changes nothing there and needs no second round.
    new_ports: dict[int, int] = {}
    by_dom = _cells(f, atts)
    for d in sorted(by_dom):
        try:
            got = _solve_domain(f, d, by_dom[d], timeout_ms)
        except _SolverUnknown:
            res.status = "unknown"
            res.summary.append(f"fix: the solver did not answer for d{d} "
                               f"({f.domains[d].name}) (timeout); nothing written")
            return res
        if got is None:
            res.status = "unfixable"
            res.summary.append(f"fix: d{d} ({f.domains[d].name}) has more channel ends "
                               f"than free ports (1..{f.domains[d].limit}); remove channels")
            return res
        new_ports.update(got)
    if all(v == f.nodes[i].port for i, v in new_ports.items()):
        ports = certify.run_groups(((r, g) for r, g in encode.rule_groups(f)
                                    if r in PORT_RULES), timeout, cores=False,
                                   release=True)
        if all(r.status != "unknown" for r in ports) and not any(
                v.answer == "sat" for r in ports for v in r.verdicts):
            res.summary.append("fix: the config already certifies; nothing to change")
            return res
        res.status = "unknown"
        res.summary.append("fix: the solver did not answer (timeout) or no certifying "
                           "repair was found; nothing written")
        return res
    if cfg.tree.is_dtb:
        raise InputError(Span(cfg.tree.source, 1, 1), "fix rewrites DTS source; give the .dts")
    source = Path(cfg.tree.source).read_text(encoding="utf-8")
    text = _rewrite(source, _edits(cfg, f, new_ports, res))
    if _bad_domains(cfg, text):  # the certifier has the last word
        res.status = "unknown"
        res.changes = []
        res.summary.append("fix: no certifying repair found; nothing written")
        return res
    res.text = text
    res.status = "fixed"
    res.summary.append(f"fix: {len(res.changes)} port change(s):")
    for c in res.changes:
        res.summary.append(f"  {c.span}: {c.node}: port {c.old} -> {c.new}")
    return res


def _decide(rule: str) -> str:
    return R.rule(rule).decide or "edit the config by hand"


def _edits(cfg: Config, f: Facts, new_ports: dict[int, int],
           res: RepairResult) -> list[tuple[Span, int, int]]:
    edits: list[tuple[Span, int, int]] = []
    for i, new in sorted(new_ports.items()):
        n: NodeFact = f.nodes[i]
        if new == n.port:
            continue
        prop = n.node.get("xen,evtchn")
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
    tree = parse_dts(text.encode("utf-8"), cfg.tree.source)
    again = Config.from_tree(tree, cfg.profile, cfg.dialect_mode)
    reports = certify.run_groups(encode.rule_groups(build(again)), cores=False, release=True)
    bad: set[int] = set()
    for r in reports:
        for v in r.verdicts:
            if v.answer != "unsat":
                scope = v.ob.scope
                bad.add(int(scope[1:].split(" ", 1)[0]) if scope.startswith("d") else -1)
    return bad
