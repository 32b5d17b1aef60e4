"""The facts the proofs reason about, read from a Config without the refimpl's verdicts.

This module is the proofs' own reading of spec/binding.md §2 and spec/boot.md steps
5-6: which nodes Xen's walk visits and in what order, which channel each visit
attempts (side A = the visited node, side B = its peer), and every datum a rule
looks at (property present/length, cells, phandles, parents, owning domains,
port limits, xenstore ports). It never calls boot.py or check.py: the two
checkers must stay independent so they can catch each other's mistakes.

Everything here is data. The rules themselves are SMT queries over this data
(encode.py). Each datum keeps the DTS place it came from (`Cite`), so that a
counterexample or an unsat core names source lines.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from evtchn_spec.grammar.errors import Span
from evtchn_spec.grammar.tree import Node, Property
from evtchn_spec.refimpl.config import COMPAT_V1, Config, Dialect, DomainSpec, has_compat

# The 2-level ABI limit on Arm (64 x 64) and the first xenstore port Xen allocates.
TWO_LEVEL_PORTS = 4096
XENSTORE_PORT = 1


@dataclass(frozen=True, slots=True)
class Cite:
    """Where a fact was written: a file position and the node it belongs to."""

    file: str
    line: int
    column: int
    node: str
    what: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"

    def as_json(self) -> dict[str, object]:
        return {"file": self.file, "line": self.line, "column": self.column,
                "node": self.node, "what": self.what}


def _cite(node: Node, span: Span, what: str) -> Cite:
    return Cite(span.file, span.line, span.column, node.path, what)


def cell_cite(node: Node, prop: Property | None, offset: int, what: str) -> Cite:
    """The exact cell at `offset` if the source wrote one, else the property/node."""
    if prop is None:
        return _cite(node, node.span, what)
    piece = prop.piece_at(offset)
    return _cite(node, piece.span if piece is not None else prop.span, what)


@dataclass(slots=True, eq=False)
class NodeFact:
    """One node a rule looks at (a walked endpoint, or the node its phandle names)."""

    idx: int
    node: Node
    has_prop: bool
    nbytes: int
    port: int  # cell 0 (0 when absent)
    ref: int  # cell 1 (0 when absent)
    phandle: int  # Xen's phandle of the node (0 when none)
    has_parent: bool
    dom: int  # domid that owns the node's parent, -1 if Xen created no such domain
    target: int  # index of the node `ref` names (dt_find_node_by_phandle), -1 if none
    cites: dict[str, Cite] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DomFact:
    domid: int
    name: str
    limit: int  # highest port a static channel may ask for
    xenstore: bool  # Xen allocated port 1 (xenstore) before the static channels
    cite: Cite | None


@dataclass(frozen=True, slots=True)
class Attempt:
    """One call of alloc_domain_evtchn that reaches the port primitives.

    `a` is the visited node (allocated first, side A), `b` its peer (bound second,
    side B, left pending). `time` orders attempts as Xen makes them.
    """

    time: int
    a: int
    b: int


@dataclass(slots=True, eq=False)
class Facts:
    config: Config
    nodes: list[NodeFact] = field(default_factory=list)
    domains: dict[int, DomFact] = field(default_factory=dict)
    visits: list[int] = field(default_factory=list)  # walked v1 node facts, in walk order
    attempts: list[Attempt] = field(default_factory=list)
    endpoints: list[EndpointFact] = field(default_factory=list)
    index: dict[int, int] = field(default_factory=dict)  # id(Node) -> node fact index
    hwdom: int | None = None
    xenstore_without_domain: list[Cite] = field(default_factory=list)
    seed_nodes: list[Cite] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class EndpointFact:
    """Every node that declares an event channel, for the 'no channel is lost' rules."""

    node: Node
    v1: bool
    walked: bool
    in_channel: bool  # some attempt names it (as A or B)
    involved: bool  # a failed visit named it
    cite: Cite


def _limit(spec: DomainSpec) -> int:
    return min(spec.effective_max_port, TWO_LEVEL_PORTS - 1)


def build(cfg: Config) -> Facts:
    """Read the facts of `cfg` (the xen dialect; seed nodes are only listed)."""
    f = Facts(cfg)
    chosen = cfg.chosen
    prof = cfg.profile
    domain_of: dict[int, DomainSpec] = {}
    for spec in cfg.domains:
        if spec.node is not None:
            domain_of[id(spec.node)] = spec
    hwdom: int | None = 0 if cfg.has_dom0 else None
    if hwdom is None and prof.late_xenstore:
        hwdom = next((d.domid for d in cfg.domains if d.capabilities & 2), None)
    f.hwdom = hwdom
    xs_dom: int | None = 0 if cfg.has_dom0 else None
    if xs_dom is None and prof.late_xenstore:
        xs_dom = next((d.domid for d in cfg.domains if d.capabilities & 4), None)
    for spec in cfg.domains:
        cite = None
        if spec.node is not None:
            enh = spec.node.get("xen,enhanced")
            cite = _cite(spec.node, enh.span if enh is not None else spec.node.span,
                         f"domain {spec.name}")
        xs = spec.xenstore and xs_dom is not None and spec.domid != xs_dom
        # What Xen panics on is the request (4.21+: "legacy" too, which gets no port).
        if spec.xenstore_requested and xs_dom is None and cite is not None:
            f.xenstore_without_domain.append(cite)
        f.domains[spec.domid] = DomFact(spec.domid, spec.name, _limit(spec), xs, cite)

    def owner(parent: Node | None) -> int:
        if parent is None:
            return -1
        spec = domain_of.get(id(parent))
        dom = spec.domid if spec is not None else (
            hwdom if parent is chosen and hwdom is not None else 0)
        return dom if dom in f.domains else -1

    def fact(node: Node) -> int:
        got = f.index.get(id(node))
        if got is not None:
            return got
        prop = node.get("xen,evtchn")
        value = prop.value if prop is not None else b""
        cells = prop.cells() if prop is not None else []
        nf = NodeFact(len(f.nodes), node, prop is not None, len(value),
                      cells[0] if cells else 0, cells[1] if len(cells) > 1 else 0,
                      cfg.phandle(node), node.parent is not None, owner(node.parent), -1)
        nf.cites["prop"] = cell_cite(node, prop, 0, "xen,evtchn") if prop is not None else \
            _cite(node, node.span, "node (no xen,evtchn)")
        nf.cites["port"] = cell_cite(node, prop, 0, "port cell")
        nf.cites["ref"] = cell_cite(node, prop, 4, "peer phandle cell")
        nf.cites["node"] = _cite(node, node.span, "node")
        parent = node.parent
        nf.cites["parent"] = _cite(parent, parent.span, "owner") if parent is not None else \
            nf.cites["node"]
        f.index[id(node)] = nf.idx
        f.nodes.append(nf)
        return nf.idx

    created: set[int] = set()
    involved: set[int] = set()
    in_channel: set[int] = set()
    walked: set[int] = set()

    def visit(node: Node) -> None:
        ep = cfg.endpoint_of.get(id(node))
        if ep is not None:
            walked.add(id(node))
        if not has_compat(node, COMPAT_V1) or id(node) in created:
            return
        i = fact(node)
        f.visits.append(i)
        nf = f.nodes[i]
        # The structural part of alloc_domain_evtchn (spec/boot.md 6.3-6.8) decides
        # whether the visit reaches the port primitives; the rules about it are
        # proved over the same data in encode.py.
        if not nf.has_prop or nf.nbytes < 8:
            involved.add(id(node))
            return
        remote = cfg.find_by_phandle(nf.ref)
        if remote is None:
            involved.add(id(node))
            return
        r = fact(remote)
        nf.target = r
        rf = f.nodes[r]
        if not rf.has_prop or rf.nbytes < 8 or rf.ref != nf.phandle or not rf.has_parent \
                or nf.dom < 0 or rf.dom < 0:
            involved.update((id(node), id(remote)))
            return
        f.attempts.append(Attempt(len(f.attempts), i, r))
        in_channel.update((id(node), id(remote)))
        if nf.port != 0 and r != i:
            # A port-0 side A fails (EVT-PORT-ZERO) and leaves both nodes free, so the
            # peer's own visit tries again the other way round (spec/binding.md §4).
            created.update((id(node), id(remote)))
        else:
            involved.update((id(node), id(remote)))

    if chosen is not None:
        for child in chosen.children.values():
            ep = cfg.endpoint_of.get(id(child))
            if ep is not None and ep.dialect is Dialect.SEED:
                f.seed_nodes.append(_cite(child, child.span, "seed node"))
            elif hwdom is not None:
                visit(child)
            for sub in child.children.values():
                visit(sub)
    for ep in cfg.endpoints:
        if ep.dialect is Dialect.SEED:
            continue
        node = ep.node
        f.endpoints.append(EndpointFact(node, ep.v1, id(node) in walked,
                                        id(node) in in_channel, id(node) in involved,
                                        _cite(node, node.span, "evtchn node")))
    return f
