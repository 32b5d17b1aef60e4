"""The binding rules as SMT-LIB 2 queries over the facts (facts.py).

Each obligation is a *violation query*: the facts of one scope (a domain, or the
whole walk for the structural rules) as data, plus "some candidate breaks rule R".
`unsat` proves the rule for that scope; `sat` is a counterexample whose model names
the candidate (an endpoint, a pair of ports) and its DTS places.

Data are uninterpreted functions over node indices (hp has-property, nb bytes,
c0 port cell, c1 phandle cell, ph phandle, haspar has-parent, dm owning domid, tg the
node the phandle names) and over domids (lim highest port, xs xenstore port 1).
A fact is one assertion; in core mode it is named, so an unsat core is a set of
DTS places.

The text is built directly (no Python Z3 terms: they cost about 65 µs each), and
scopes are small (one domain at a time), so building and solving grow linearly.
"""

from __future__ import annotations

import itertools
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from evtchn_spec.refimpl import rules as R

from . import ports
from .facts import XENSTORE_PORT, Attempt, Cite, Facts, NodeFact

LOGIC = "QF_AUFLIA"
DECLS = ("(declare-fun hp (Int) Bool)\n(declare-fun nb (Int) Int)\n"
         "(declare-fun c0 (Int) Int)\n(declare-fun c1 (Int) Int)\n"
         "(declare-fun ph (Int) Int)\n(declare-fun haspar (Int) Bool)\n"
         "(declare-fun dm (Int) Int)\n(declare-fun tg (Int) Int)\n"
         "(declare-fun lim (Int) Int)\n(declare-fun xs (Int) Bool)\n")

# What each rule's obligation claims (the spec/binding.md rule, as a property: its
# `prove` text in refimpl/rules.py), in the order the obligations are built and reported.
CLAIMS: dict[str, str] = {rid: R.rule(rid).prove for rid in (
    R.XEN_PROP_MISSING, R.XEN_PROP_SHORT, R.XEN_PEER_UNKNOWN, R.XEN_PEER_ASYMMETRIC,
    R.XEN_PEER_ROOT, R.XEN_DOMAIN_UNKNOWN, R.XEN_PEER_SELF, R.EVT_PORT_RANGE,
    R.EVT_PORT_XENSTORE, R.EVT_PORT_ZERO, R.EVT_PORT_BUSY, R.XEN_NOT_WALKED, R.XEN_COMPAT,
    R.DOM_XENSTORE, R.SEED_UNMERGED)}
RULE_ORDER = list(CLAIMS)


@dataclass(slots=True)
class Candidate:
    """One way the rule could break: the model decides whether it does."""

    var: str
    message: str
    cites: list[Cite]


@dataclass(frozen=True, slots=True)
class FactBlock:
    """The facts of one scope, rendered once and shared by every obligation over it.

    `body` is the unnamed form, one `(assert A)` line per fact (no newline inside an
    assertion); the named form (for unsat cores) is rendered from it on demand, so a
    large config keeps one string per scope instead of a tuple of strings per fact."""

    body: str
    names_text: str  # the fact names, one a line (one string, not one object per fact)
    cites: tuple[Cite | None, ...]

    @property
    def names(self) -> list[str]:
        return self.names_text.split("\n") if self.body else []

    def lines(self, named: bool) -> list[str]:
        if not self.body:
            return []
        lines = self.body.split("\n")
        if not named:
            return lines
        # "(assert A)" -> "(assert (! A :named n))"
        return [f"(assert (! {ln[8:-1]} :named {n}))"
                for ln, n in zip(lines, self.names, strict=True)]

    def items(self) -> list[tuple[str, str, Cite | None]]:
        """(name, assertion, place) per fact, in order."""
        lines = self.body.split("\n") if self.body else []
        return [(n, ln[8:-1], c) for ln, n, c in zip(lines, self.names, self.cites,
                                                      strict=True)]


def fact_block(items: list[tuple[str, str, Cite | None]]) -> FactBlock:
    for n, a, _ in items:
        if "\n" in a or "\n" in n:
            raise ValueError(f"internal: a fact spans lines: {n} {a!r}")
    return FactBlock("\n".join(f"(assert {a})" for _, a, _ in items),
                     "\n".join(n for n, _, _ in items), tuple(c for _, _, c in items))


@dataclass(slots=True)
class Obligation:
    rule: str
    scope: str
    facts: FactBlock
    decls: list[str]
    defs: list[str]  # definitions of candidate/aux variables (not facts)
    defines: list[str]  # per def, the one symbol it constrains (for `cone`)
    violation: str
    candidates: list[Candidate] = field(default_factory=list)
    pairs: list[tuple[str, str, Candidate]] = field(default_factory=list)  # BUSY keys
    aux: dict[str, str] = field(default_factory=dict)  # model values to report
    # BUSY candidates "a failing channel asks for a held port": candidate -> (its
    # "fails after asking" Boolean, the node whose port cell it asks for, how many of
    # `pairs` come before it), so that a model names the channel holding that port
    asks: dict[str, tuple[str, int, int]] = field(default_factory=dict)
    # why the proofs cannot decide this obligation (it is then unknown, never asked)
    unsupported: str = ""
    released: bool = False

    def __post_init__(self) -> None:
        if len(self.defs) != len(self.defines):
            raise ValueError(f"internal: {self.rule}: a definition names no symbol")

    def text(self, named: bool = False) -> str:
        """The query (without check-sat): declarations, facts, definitions, violation."""
        if self.released:
            raise RuntimeError(f"internal: the query of {self.rule} in {self.scope} "
                               "was released after it was discharged")
        out = list(self.decls)
        if named:
            out += self.facts.lines(True)
        elif self.facts.body:
            out.append(self.facts.body)
        out += self.defs
        out.append(f"(assert {self.violation})")
        return "\n".join(out) + "\n"

    def text_size(self) -> int:
        """About len(text()), without rendering it."""
        return (sum(len(x) + 1 for x in self.decls) + len(self.facts.body)
                + sum(len(x) + 1 for x in self.defs) + len(self.violation) + 10)

    def release(self) -> None:
        """Drop the query once discharged (its rule and scope stay for the report)."""
        self.facts = NO_FACTS
        self.decls, self.defs, self.defines, self.violation = [], [], [], ""
        self.candidates, self.pairs, self.aux, self.asks = [], [], {}, {}
        self.released = True


NO_FACTS = FactBlock("", "", ())

# The data functions of the queries (DECLS, and _lost's inch/inv). A fact fixes one of
# them at a literal argument, "(= (c0 12) 5)", or a declared constant, "(= e3 true)".
_DATA = ("hp", "nb", "c0", "c1", "ph", "haspar", "dm", "tg", "lim", "xs", "inch", "inv")
_APP = re.compile(r"\((" + "|".join(_DATA) + r") (\d+|\(- \d+\))\)")
_APP_ANY = re.compile(r"\((" + "|".join(_DATA) + r") \((?!- )")  # at a computed argument
_IDENT = re.compile(r"[A-Za-z_][\w]*")


def cone(ob: Obligation, term: str) -> tuple[list[tuple[str, str, Cite | None]],
                                              list[str]]:
    """The facts and definitions `term` depends on: the definitions of every symbol
    it names, then of every symbol those name, and the facts of every datum any of
    them reads (every fact of a function read at a computed argument, such as
    "(hp (tg 4))").

    Any subset of a query's facts and definitions is weaker than the query, so an
    unsat core found over the cone is an unsat core of the whole query; the cone only
    makes it small (a domain's port model has hundreds of definitions, one candidate
    needs a few)."""
    by_sym: dict[str, list[int]] = defaultdict(list)
    for i, sym in enumerate(ob.defines):
        by_sym[sym].append(i)
    names: set[str] = set()
    apps: set[str] = set()
    whole: set[str] = set()
    keep: set[int] = set()
    todo = [term]
    while todo:
        text = todo.pop()
        apps.update(m.group(0) for m in _APP.finditer(text))
        whole.update(_APP_ANY.findall(text))
        for ident in _IDENT.findall(text):
            if ident in names:
                continue
            names.add(ident)
            for i in by_sym.get(ident, ()):
                if i not in keep:
                    keep.add(i)
                    todo.append(ob.defs[i])
    facts = []
    for name, assertion, cite in ob.facts.items():
        m = _APP.match(assertion, 3)  # "(= SUBJECT VALUE)", SUBJECT "(f N)" or a constant
        if (m.group(0) in apps or m.group(1) in whole) if m is not None \
                else assertion[3:].split(" ", 1)[0] in names:
            facts.append((name, assertion, cite))
    return facts, [ob.defs[i] for i in sorted(keep)]


def _b(v: bool) -> str:
    return "true" if v else "false"


def _i(v: int) -> str:
    return str(v) if v >= 0 else f"(- {-v})"


class _FactSet:
    """The facts one obligation needs, each asserted once, with its DTS place."""

    def __init__(self, facts: Facts) -> None:
        self.f = facts
        self.items: list[tuple[str, str, Cite | None]] = []
        self.seen: set[str] = set()

    def add(self, name: str, assertion: str, cite: Cite | None) -> None:
        if name not in self.seen:
            self.seen.add(name)
            self.items.append((name, assertion, cite))

    def node(self, i: int, *what: str) -> None:
        nf = self.f.nodes[i]
        for w in what:
            self._one(nf, w)

    def _one(self, nf: NodeFact, w: str) -> None:
        i = nf.idx
        c = nf.cites
        if w == "hp":
            self.add(f"hp_{i}", f"(= (hp {i}) {_b(nf.has_prop)})", c["prop"])
        elif w == "nb":
            self.add(f"nb_{i}", f"(= (nb {i}) {nf.nbytes})", c["prop"])
        elif w == "c0":
            self.add(f"c0_{i}", f"(= (c0 {i}) {nf.port})", c["port"])
        elif w == "c1":
            self.add(f"c1_{i}", f"(= (c1 {i}) {nf.ref})", c["ref"])
        elif w == "ph":
            self.add(f"ph_{i}", f"(= (ph {i}) {nf.phandle})", c["node"])
        elif w == "par":
            self.add(f"par_{i}", f"(= (haspar {i}) {_b(nf.has_parent)})", c["node"])
        elif w == "dm":
            self.add(f"dm_{i}", f"(= (dm {i}) {_i(nf.dom)})", c["parent"])
        elif w == "tg":
            self.add(f"tg_{i}", f"(= (tg {i}) {_i(nf.target)})", c["ref"])

    def dom(self, d: int) -> None:
        df = self.f.domains[d]
        self.add(f"lim_{d}", f"(= (lim {d}) {df.limit})", df.cite)
        self.add(f"xs_{d}", f"(= (xs {d}) {_b(df.xenstore)})", df.cite)


STRUCTURAL = (R.XEN_PROP_MISSING, R.XEN_PROP_SHORT, R.XEN_PEER_UNKNOWN,
              R.XEN_PEER_ASYMMETRIC, R.XEN_PEER_ROOT, R.XEN_DOMAIN_UNKNOWN)
# One rule per pass: a pass yields its obligations a domain at a time, so a rule's
# queries are built while the solver works through them. The port model of a domain
# is built again for EVT-PORT-BUSY after EVT-PORT-ZERO, which needs it only in a
# domain where some side A asks for port 0.
PORT_PASSES = ((R.XEN_PEER_SELF,), (R.EVT_PORT_RANGE,), (R.EVT_PORT_XENSTORE,),
               (R.EVT_PORT_ZERO,), (R.EVT_PORT_BUSY,))


def _visit_cond(facts: Facts, rule: str, v: int) -> tuple[str, str]:
    """The violation of a structural rule at visit v, and its message."""
    nodes = facts.nodes
    n = nodes[v]
    t = n.target
    okp = f"(and (hp {v}) (>= (nb {v}) 8))"
    tgt = f"(tg {v})"
    has_t = f"(>= {tgt} 0)"
    okt = f"(and (hp {tgt}) (>= (nb {tgt}) 8))"
    pair = f"(and {okp} {has_t} {okt})"
    sym = f"(= (c1 {tgt}) (ph {v}))"
    path = n.node.path
    tpath = nodes[t].node.path if t >= 0 else "?"
    if rule == R.XEN_PROP_MISSING:
        return (f"(or (not (hp {v})) (and {okp} {has_t} (not (hp {tgt}))))",
                f"{path} or its peer {tpath} has no xen,evtchn")
    if rule == R.XEN_PROP_SHORT:
        return (f"(or (and (hp {v}) (< (nb {v}) 8)) (and {okp} {has_t} (hp {tgt}) "
                f"(< (nb {tgt}) 8)))", f"{path} or its peer {tpath}: xen,evtchn under 2 cells")
    if rule == R.XEN_PEER_UNKNOWN:
        return f"(and {okp} (< {tgt} 0))", f"{path}: its phandle names no node"
    if rule == R.XEN_PEER_ASYMMETRIC:
        return f"(and {pair} (not {sym}))", f"{path} -> {tpath}, which does not point back"
    if rule == R.XEN_PEER_ROOT:
        return f"(and {pair} {sym} (not (haspar {tgt})))", f"{path}: its peer is the root"
    if rule == R.XEN_DOMAIN_UNKNOWN:
        return (f"(and {pair} {sym} (haspar {tgt}) (or (< (dm {v}) 0) (< (dm {tgt}) 0)))",
                f"{path} <-> {tpath}: an end in no domain Xen created")
    raise ValueError(f"internal: {rule} is not a structural rule")


def _structural(facts: Facts) -> Iterator[tuple[str, list[Obligation]]]:
    """XEN-PROP-*, XEN-PEER-*, XEN-DOMAIN-UNKNOWN over every visit, one rule at a time
    (a caller that discharges each rule before asking for the next holds one rule's
    queries only)."""
    nodes = facts.nodes
    # One query per domain of the visited node: small queries, linear in total.
    groups: dict[int, list[int]] = defaultdict(list)
    for v in facts.visits:
        groups[nodes[v].dom].append(v)
    # Every visit has a candidate for each of these rules, so the facts of one domain's
    # visits are the same for all six: rendered once per domain and shared.
    blocks: dict[int, FactBlock] = {}
    for rule in STRUCTURAL:
        out = []
        for dom in sorted(groups):
            fs = _FactSet(facts) if dom not in blocks else None
            cands: list[Candidate] = []
            defs: list[str] = []
            syms: list[str] = []
            for v in groups[dom]:
                cond, msg = _visit_cond(facts, rule, v)
                t = nodes[v].target
                if fs is not None:
                    fs.node(v, "hp", "nb", "tg", "ph", "dm")
                    if t >= 0:
                        fs.node(t, "hp", "nb", "c1", "par", "dm")
                name = f"v{v}"
                defs.append(f"(declare-const {name} Bool)\n(assert (= {name} {cond}))")
                syms.append(name)
                nv = nodes[v]
                cites = [nv.cites["prop"]] + ([nodes[t].cites["ref"]] if t >= 0 else [])
                cands.append(Candidate(name, msg, cites))
            if fs is not None:
                blocks[dom] = fact_block(fs.items)
            violation = "(or " + " ".join(c.var for c in cands) + ")" if len(cands) > 1 \
                else cands[0].var
            scope = (f"visits in d{dom} ({facts.domains[dom].name})" if dom >= 0
                     else "visits in no created domain")
            out.append(Obligation(rule, scope, blocks[dom], [DECLS], defs, syms, violation,
                                  cands))
        if out:
            yield rule, out


@dataclass(slots=True)
class _Event:
    att: Attempt
    side: str  # "A" | "B"
    node: int  # node fact index
    key: str  # SMT name of the port this event holds


def _ports(facts: Facts, want: tuple[str, ...]) -> Iterator[Obligation]:
    """EVT-PORT-* and XEN-PEER-SELF, one query per rule and domain; only the rules in
    `want`, a domain at a time as they are asked for."""
    nodes = facts.nodes
    by_dom: dict[int, list[_Event]] = defaultdict(list)
    for at in facts.attempts:
        da = nodes[at.a].dom
        db = nodes[at.b].dom
        by_dom[da].append(_Event(at, "A", at.a, f"pa{at.time}"))
        by_dom[db].append(_Event(at, "B", at.b, f"pb{at.time}"))
    for d in sorted(by_dom):
        evs = by_dom[d]
        df = facts.domains[d]
        scope = f"d{d} ({df.name})"
        yield from _port_domain(facts, d, scope, evs, want)


def _va(a: int, da: int) -> str:
    """Side A's allocation succeeds (port 0 takes a free port)."""
    return f"(and (<= (c0 {a}) (lim {da})) (not (and (xs {da}) (= (c0 {a}) {XENSTORE_PORT}))))"


def _vb(b: int, db: int) -> str:
    """Side B's own port is allocatable (0 means the lowest free one)."""
    return f"(and (<= (c0 {b}) (lim {db})) (not (and (xs {db}) (= (c0 {b}) {XENSTORE_PORT}))))"


def _held_py(facts: Facts, at: Attempt) -> bool:
    """The data's value of an attempt's held condition (h<time> in _port_domain: side A
    asks for a port other than 0 and both sides' ports are allocatable; used only to
    skip emitting a disjunct that its own guard would make false)."""
    a, b = facts.nodes[at.a], facts.nodes[at.b]
    da, db = facts.domains[a.dom], facts.domains[b.dom]
    ok_a = a.port != 0 and a.port <= da.limit and not (da.xenstore and a.port == XENSTORE_PORT)
    ok_b = b.port <= db.limit and not (db.xenstore and b.port == XENSTORE_PORT)
    return at.a != at.b and ok_a and ok_b


def _port_domain(facts: Facts, d: int, scope: str, evs: list[_Event],
                 want: tuple[str, ...]) -> list[Obligation]:
    nodes = facts.nodes
    out: list[Obligation] = []

    blocks: dict[bool, FactBlock] = {}

    def base(with_other_side: bool) -> FactBlock:
        """The domain's facts (and its peers' with `with_other_side`), shared by its
        obligations."""
        if with_other_side in blocks:
            return blocks[with_other_side]
        fs = _FactSet(facts)
        fs.dom(d)
        for e in evs:
            fs.node(e.node, "c0")
            if with_other_side:
                other = e.att.b if e.side == "A" else e.att.a
                fs.node(other, "c0")
                fs.dom(nodes[other].dom)
        blocks[with_other_side] = fact_block(fs.items)
        return blocks[with_other_side]

    def ob(rule: str, fs: FactBlock, cands: list[Candidate], defs: list[str],
           extra: list[str] | None = None) -> None:
        if not cands:
            return
        viol = "(or " + " ".join(c.var for c in cands) + ")" if len(cands) > 1 \
            else cands[0].var
        # each of these definitions is its candidate's
        out.append(Obligation(rule, scope, fs, [DECLS, *(extra or [])], defs,
                              [c.var for c in cands], viol, cands))

    def cand(name: str, cond: str, msg: str, cites: list[Cite]) -> tuple[str, Candidate]:
        return f"(declare-const {name} Bool)\n(assert (= {name} {cond}))", \
            Candidate(name, msg, cites)

    # A port-0 request takes the lowest free port, never above 1 + the ports held
    # before it (the xenstore port, one per earlier event), so only a domain with
    # more events than its limit can run out of ports (ENOSPC). The port model below
    # does not say when that happens: such a domain's EVT-PORT-RANGE is unknown.
    asks_0 = any(nodes[e.node].port == 0 and (e.side == "B" or nodes[e.att.b].dom == d)
                 for e in evs)
    may_fill = asks_0 and len(evs) + facts.domains[d].xenstore > facts.domains[d].limit

    # EVT-PORT-RANGE: an explicit port above the domain's limit.
    if R.EVT_PORT_RANGE in want:
        fs, cands, defs = base(False), [], []
        if may_fill:
            out.append(Obligation(
                R.EVT_PORT_RANGE, scope, fs, [DECLS], [], [], "true", unsupported=(
                    f"d{d} has {len(evs)} channel ends and ports up to "
                    f"{facts.domains[d].limit}, and some ask for port 0: whether one "
                    "finds no free port (ENOSPC) is not modelled; run `check`")))
        for e in evs:
            n = nodes[e.node]
            df, c = cand(f"r{e.att.time}{e.side}", f"(> (c0 {e.node}) (lim {d}))",
                         f"{n.node.path}: port {n.port} > d{d}'s limit "
                         f"{facts.domains[d].limit}", [n.cites["port"]])
            defs.append(df)
            cands.append(c)
        ob(R.EVT_PORT_RANGE, fs, cands, defs)

    # EVT-PORT-XENSTORE: port 1 where Xen already put the xenstore channel.
    if facts.domains[d].xenstore and R.EVT_PORT_XENSTORE in want:
        fs, cands, defs = base(False), [], []
        for e in evs:
            n = nodes[e.node]
            df, c = cand(f"x{e.att.time}{e.side}",
                         f"(and (xs {d}) (= (c0 {e.node}) {XENSTORE_PORT}))",
                         f"{n.node.path}: port {XENSTORE_PORT} is d{d}'s xenstore port",
                         [n.cites["port"]] + [c for c in (facts.domains[d].cite,)
                                              if c is not None])
            defs.append(df)
            cands.append(c)
        ob(R.EVT_PORT_XENSTORE, fs, cands, defs)

    # XEN-PEER-SELF: per self-linked attempt whose side A is in d.
    if R.XEN_PEER_SELF in want:
        sc: list[Candidate] = []
        sd: list[str] = []
        for e in evs:
            if e.side == "A" and e.att.a == e.att.b:
                a = e.att.a
                na = nodes[a]
                df, c = cand(f"s{e.att.time}", f"(and (not (= (c0 {a}) 0)) {_va(a, d)})",
                             f"{na.node.path} is its own peer (port {na.port} in d{d} twice)",
                             [na.cites["ref"]])
                sd.append(df)
                sc.append(c)
        ob(R.XEN_PEER_SELF, base(True), sc, sd)

    # EVT-PORT-ZERO has a candidate where a side B in d has a side A asking for 0
    zero = R.EVT_PORT_ZERO in want and any(
        e.side == "B" and nodes[e.att.a].port == 0 for e in evs)
    if not zero and R.EVT_PORT_BUSY not in want:
        return out

    # The domain's port model: which port every event holds, in Xen's order. A port-0
    # request takes the lowest free port at that moment, which the solver works out.
    # The ports held after each attempt are a set (an array from port to "held"), so
    # "a failing channel asks for a port an earlier channel holds" is one select, not a
    # disjunction over every earlier channel: a domain's query grows linearly with its
    # channels.
    mfs = base(True)
    mdefs: list[str] = []
    msyms: list[str] = []  # the symbol each of mdefs constrains
    mextra: list[str] = []
    pairs: list[tuple[str, str, Candidate]] = []
    aux: dict[str, str] = {}
    earlier: list[tuple[str, str]] = []  # (held condition, port term)
    if facts.domains[d].xenstore:
        earlier.append((f"(xs {d})", str(XENSTORE_PORT)))
    keyterms: list[str] = []
    asks: dict[str, tuple[str, int, int]] = {}  # see Obligation.asks
    qa: dict[int, str] = {}  # loopback attempts whose side A asks for port 0
    zdefs: list[tuple[Attempt, str]] = []  # side B's own allocation succeeds
    a_pos: dict[int, int] = {}  # attempt time -> index of its side A in `earlier`
    lz: list[Candidate] = []  # BUSY candidates beyond the distinctness of held ports

    held_names: dict[int, str] = {}  # attempt time -> its held condition's name
    # the set of ports held before the current attempt. At first only the xenstore
    # port (1), in a domain with xenstore: Sinit is pinned so at every port the
    # queries read (a set is only ever read at those, and a read goes down the
    # stores to Sinit at the same port), which needs no constant arrays (not
    # SMT-LIB 2.6: cvc5 takes them only with --arrays-exp).
    ports_held = "Sinit"
    mextra.append("(declare-const Sinit (Array Int Bool))")
    pinned: set[str] = set()
    taken: list[str] = []  # ports the current attempt takes in d, if it is made

    def held_now(port: str) -> str:
        """`port` is in the set of ports held before the current attempt."""
        if port not in pinned:
            pinned.add(port)
            first = (f"(and (xs {d}) (= {port} {XENSTORE_PORT}))"
                     if facts.domains[d].xenstore else "false")
            mdef("Sinit", f"(assert (= (select Sinit {port}) {first}))")
        return f"(select {ports_held} {port})"

    def mdef(sym: str, text: str) -> None:
        mdefs.append(text)
        msyms.append(sym)

    def lowest_free(q: str, before: list[tuple[str, str]]) -> str:
        # unbounded: a definition must never constrain the data (a free port always
        # exists), and within the limit it is the same port (see may_fill above)
        return ports.lowest_free(ports.SMT, q, before)

    def held_of(at: Attempt) -> str:
        """The attempt makes its channel (so both ports stay taken), as a name defined
        once: every later allocation and candidate mentions it, and writing it out each
        time made a domain's queries quadratic in text (a definition, so the answers
        are the same)."""
        if at.a == at.b:
            return "false"
        h = held_names.get(at.time)
        if h is None:
            h = held_names[at.time] = f"h{at.time}"
            ga, gb = f"ga{at.time}", f"gb{at.time}"
            mextra.append(f"(declare-const {h} Bool)\n(declare-const {ga} Bool)\n"
                          f"(declare-const {gb} Bool)")
            # side A is allocated; side B's own port is allocatable (see _held)
            mdef(ga, f"(assert (= {ga} (and (not (= (c0 {at.a}) 0)) "
                     f"{_va(at.a, nodes[at.a].dom)})))")
            mdef(gb, f"(assert (= {gb} {_vb(at.b, nodes[at.b].dom)}))")
            mdef(h, f"(assert (= {h} (and {ga} {gb})))")
        return h

    for e in sorted(evs, key=lambda e: (e.att.time, e.side)):
        at = e.att
        held = held_of(at)
        n = nodes[e.node]
        if e.side == "A":
            port = f"(c0 {e.node})"
            if n.port == 0 and nodes[at.b].dom == d and at.a != at.b:
                q = f"qa{at.time}"
                mextra.append(f"(declare-const {q} Int)")
                mdef(q, f"(assert (=> (= (c0 {e.node}) 0) {lowest_free(q, earlier)}))")
                qa[at.time] = q
                aux[q] = f"port Xen allocates for {n.node.path} (asked for 0)"
        else:
            q = f"q{at.time}"
            mextra.append(f"(declare-const {q} Int)")
            port = q
            before = list(earlier)
            if at.time in a_pos:  # loopback: side A's port is taken once A is allocated
                before[a_pos[at.time]] = (f"(and (not (= (c0 {at.a}) 0)) {_va(at.a, d)})",
                                          f"(c0 {at.a})")
            na = nodes[at.a]
            if na.port == 0:
                # EVT-PORT-ZERO needs side B's own allocation to succeed first.
                own = [_vb(at.b, d), f"(=> (not (= (c0 {e.node}) 0)) "
                       f"(not {held_now(f'(c0 {e.node})')}))"]
                if at.time in qa:
                    own.append(f"(not (= (c0 {e.node}) {qa[at.time]}))")
                zdefs.append((at, "(and " + " ".join(own) + ")"))
            if n.port == 0:
                aux[q] = f"port Xen binds for {n.node.path} (asked for 0)"
                mdef(q, f"(assert (=> (= (c0 {e.node}) 0) {lowest_free(q, before)}))")
            mdef(q, f"(assert (=> (not (= (c0 {e.node}) 0)) (= {q} (c0 {e.node}))))")
        if at.a != at.b and earlier and not _held_py(facts, at):
            # A channel that fails anyway (a bad port on one side) still asks for its
            # port on the other side first: -EBUSY if an earlier channel holds it.
            if e.side == "A":
                tried = f"ga{at.time}"
            else:
                tried = f"(and ga{at.time} (not (= (c0 {e.node}) 0)) gb{at.time})"
            f = f"f{at.time}{e.side}"  # fails, after asking for its port here
            mextra.append(f"(declare-const {f} Bool)")
            mdef(f, f"(assert (= {f} (and (not {held}) {tried})))")
            asks[f"u{at.time}{e.side}"] = (f, e.node, len(pairs))
            df, c = cand(f"u{at.time}{e.side}", f"(and {f} {held_now(f'(c0 {e.node})')})",
                         f"{n.node.path} asks for port {n.port} of d{d}, which an earlier "
                         "channel holds", [n.cites["port"]])
            mdef(c.var, df)
            lz.append(c)
        if at.a != at.b:
            k = f"k{at.time}{e.side}"
            mextra.append(f"(declare-const {k} Int)")
            sentinel = at.time * 2 + 1 + (e.side == "B")
            mdef(k, f"(assert (= {k} (ite {held} {port} (- {sentinel}))))")
            pairs.append((k, port, Candidate(k, n.node.path, [n.cites["port"]])))
            keyterms.append(k)
            taken.append(port)
            if e.side == "A":
                a_pos[at.time] = len(earlier)
            earlier.append((held, port))
        if taken and (e.side == "B" or nodes[at.b].dom != d):
            # the attempt is over in d: what it holds if it was made
            after = f"S{at.time}"
            stores = ports_held
            for p in taken:
                stores = f"(store {stores} {p} true)"
            mextra.append(f"(declare-const {after} (Array Int Bool))")
            mdef(after, f"(assert (= {after} (ite {held} {stores} {ports_held})))")
            ports_held, taken = after, []

    # EVT-PORT-ZERO: side A asked for port 0 and side B (in d) got its own port, so
    # the bind names port 0 of side A's domain. Checked in side B's domain.
    zc: list[Candidate] = []
    zd: list[str] = []
    for at, own_ok in zdefs:
        a, b = at.a, at.b
        na, nb_ = nodes[a], nodes[b]
        if at.time in qa:  # loopback: side A's free port may be the one side B asks for
            q = qa[at.time]
            df, c = cand(f"lz{at.time}", f"(and (= (c0 {a}) 0) {_vb(b, d)} (= (c0 {b}) {q}))",
                         f"{na.node.path} asks for port 0 and gets the lowest free port of "
                         f"d{d}, which its peer {nb_.node.path} asks for",
                         [na.cites["port"], nb_.cites["port"]])
            mdef(c.var, df)
            lz.append(c)
        df, c = cand(f"z{at.time}", f"(and (= (c0 {a}) 0) {own_ok})",
                     f"{na.node.path} is side A (visited first) and asks for port 0; "
                     f"its peer {nb_.node.path} is side B", [na.cites["port"],
                                                             nb_.cites["port"]])
        zd.append(df)
        zc.append(c)
    if zc and zero:
        out.append(Obligation(R.EVT_PORT_ZERO, scope, mfs, [DECLS, *mextra],
                              [*mdefs, *zd], [*msyms, *(c.var for c in zc)],
                              "(or " + " ".join(c.var for c in zc) + " false)", zc))

    # EVT-PORT-BUSY: the ports the channels keep are distinct (Z3's own distinct, which
    # is cheaper than asking the port sets for each), and no channel that fails asks
    # for a held one first.
    terms = [f"(not (distinct {' '.join(keyterms)}))"] if len(keyterms) >= 2 else []
    terms += [c.var for c in lz]
    if terms and R.EVT_PORT_BUSY in want:
        viol = terms[0] if len(terms) == 1 else "(or " + " ".join(terms) + ")"
        out.append(Obligation(R.EVT_PORT_BUSY, scope, mfs, [DECLS, *mextra], mdefs,
                              msyms, viol, lz, pairs, aux, asks))
    return out


def _lost(facts: Facts) -> list[Obligation]:
    """XEN-NOT-WALKED / XEN-COMPAT: a described channel that no visit makes."""
    out = []
    for rule in (R.XEN_NOT_WALKED, R.XEN_COMPAT):
        eps = [e for e in facts.endpoints
               if (e.v1 and not e.walked if rule == R.XEN_NOT_WALKED else not e.v1)]
        if not eps:
            continue
        items: list[tuple[str, str, Cite | None]] = []
        cands = []
        defs: list[str] = []
        syms: list[str] = []
        for j, e in enumerate(eps):
            items.append((f"inch_{j}", f"(= (inch {j}) {_b(e.in_channel)})", e.cite))
            items.append((f"inv_{j}", f"(= (inv {j}) {_b(e.involved)})", e.cite))
            name = f"l{j}"
            defs.append(f"(declare-const {name} Bool)\n"
                        f"(assert (= {name} (and (not (inch {j})) (not (inv {j})))))")
            syms.append(name)
            what = "never visited" if rule == R.XEN_NOT_WALKED else "skipped (not xen,evtchn-v1)"
            cands.append(Candidate(name, f"{e.node.path} is {what} and in no channel",
                                   [e.cite]))
        viol = "(or " + " ".join(c.var for c in cands) + ")" if len(cands) > 1 \
            else cands[0].var
        out.append(Obligation(rule, "all endpoints", fact_block(items),
                              ["(declare-fun inch (Int) Bool)\n(declare-fun inv (Int) Bool)"],
                              defs, syms, viol, cands))
    return out


def _listed(rule: str, cites: list[Cite], what: str) -> Obligation:
    items: list[tuple[str, str, Cite | None]] = [
        (f"in_{j}", f"(= e{j} true)", c) for j, c in enumerate(cites)]
    decls = [f"(declare-const e{j} Bool)" for j in range(len(cites))]
    cands = [Candidate(f"e{j}", f"{c.node}: {what}", [c]) for j, c in enumerate(cites)]
    viol = "(or " + " ".join(c.var for c in cands) + ")" if len(cands) > 1 else cands[0].var
    return Obligation(rule, "all", fact_block(items), decls, [], [], viol, cands)


def rule_groups(facts: Facts) -> Iterator[tuple[str, Iterable[Obligation]]]:
    """Every obligation of the config, one rule at a time in RULE_ORDER, built only when
    asked for: a caller that discharges (and drops) each rule before the next keeps one
    rule's queries in memory, not the whole config's; the port rules' obligations are
    built a domain at a time as the caller takes them (each group is iterated once)."""
    yield from _structural(facts)
    for (rule,) in PORT_PASSES:
        obs = _ports(facts, (rule,))
        first = next(obs, None)
        if first is not None:
            yield rule, itertools.chain((first,), obs)
    for ob in _lost(facts):
        yield ob.rule, [ob]
    if facts.xenstore_without_domain:
        yield R.DOM_XENSTORE, [_listed(
            R.DOM_XENSTORE, facts.xenstore_without_domain,
            "xen,enhanced asks for xenstore and no xenstore domain exists")]
    if facts.seed_nodes and facts.config.dialect_mode == "auto":
        yield R.SEED_UNMERGED, [_listed(R.SEED_UNMERGED, facts.seed_nodes,
                                        "a seed-dialect node, which Xen 4.17 skips")]


def obligations(facts: Facts) -> list[Obligation]:
    """Every obligation of the config, in RULE_ORDER."""
    return [ob for _, group in rule_groups(facts) for ob in group]
