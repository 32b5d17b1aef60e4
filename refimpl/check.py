"""`check`: every rule of the binding, as findings with locations and fixes.

The findings come from the reference boot run with keep_going=True (boot.py), so
`check` reports an error exactly when the boot panics (the boot's first failure)
or when a channel the tree describes is missing after boot (an endpoint node that
ended up in no channel). Warnings are what Xen accepts but a reader would not
expect. Nothing here walks the tree per endpoint: everything is dict lookups.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from . import rules as R
from .boot import BootResult, boot
from .config import Config, Dialect, Endpoint, Loc, loc, prop_loc
from .evtchn_common import ECS_RESERVED
from .xen_state import EVTCHNS_PER_BUCKET

if TYPE_CHECKING:  # (the policy reader is imported only where --policy is given)
    from .policy import Policy


@dataclass(frozen=True, slots=True)
class Finding:
    rule: str
    severity: str
    message: str
    locations: tuple[Loc, ...]
    hint: str
    dialect: str | None = None


@dataclass(slots=True)
class CheckResult:
    config: Config
    boot: BootResult
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return sum(1 for f in self.findings if f.severity == "error")

    @property
    def warnings(self) -> int:
        return sum(1 for f in self.findings if f.severity == "warning")

    def verdict(self) -> str:
        return "violations" if self.errors else "ok"


class _Collector:
    def __init__(self) -> None:
        self.items: list[Finding] = []
        self.seen: set[tuple[str, tuple[str, ...]]] = set()

    def add(self, rule: str, message: str, locations: tuple[Loc, ...] | list[Loc], hint: str,
            dialect: str | None = None, severity: str | None = None) -> None:
        locs = tuple(locations)
        key = (rule, tuple(sorted({lc.node for lc in locs})))
        if key in self.seen:
            return
        self.seen.add(key)
        self.items.append(Finding(rule, severity or R.rule(rule).severity, message, locs,
                                  hint, dialect))


def check(cfg: Config, policy: Policy | None = None, strict: bool = False,
          overrides: Sequence[tuple[str, str]] = ()) -> CheckResult:
    """Run every rule. `policy` is a policy.Policy (or None). `strict` makes every
    finding an error; then `overrides`, (action, rule ID) pairs in command-line order
    (the last one for a rule wins), make a rule's findings warnings, errors or drop
    them. Unknown rule IDs are the caller's to refuse (rules.rule raises KeyError)."""
    res = boot(cfg, keep_going=True)
    out = _Collector()
    for i, f in enumerate(res.failures):
        what = (f'Xen prints "{f.error}" and panics: "{f.panic}"' if f.error is not None
                else f'Xen panics: "{f.panic}"')
        if i > 0:
            what += " (if the problems before it were fixed)"
        out.add(f.rule, f"{f.message}. {what}", f.locations, f.hint, _dialect_of(cfg, f))
    for q in res.quirks:
        out.add(q.rule, q.message, q.locations, q.hint, "xen")
    _endpoints(cfg, res, out)
    _enhanced_values(cfg, out)
    _dup_phandles(cfg, out)
    _sparse(res, out)
    if policy is not None:
        for ch, why in policy.denied(res):
            out.add(R.POL_DENIED, why, (loc(ch.node_a), loc(ch.node_b))
                    if ch.node_a is not ch.node_b else (loc(ch.node_a),),
                    R.hint(R.POL_DENIED),
                    ch.dialect.value)
    findings = out.items
    if strict:
        findings = [replace(f, severity="error") for f in findings]
    final = {R.rule(rid).id: action for action, rid in overrides}
    if final:
        findings = [f if final.get(f.rule) is None else replace(f, severity=final[f.rule])
                    for f in findings if final.get(f.rule) != "off"]
    findings.sort(key=lambda f: (f.severity != "error", _pos(f)))
    return CheckResult(cfg, res, findings)


def _pos(f: Finding) -> tuple[str, int, int]:
    if not f.locations:
        return ("", 0, 0)
    lc = f.locations[0]
    return (lc.file, lc.line, lc.column)


def _dialect_of(cfg: Config, f: object) -> str | None:
    node = getattr(f, "node", None)
    if node is None:
        return None
    ep = next((e for e in (cfg.endpoint_of.get(id(n)) for n in
                           [cfg.tree.find(node)] if n is not None) if e is not None), None)
    return ep.dialect.value if ep is not None else None


def _endpoints(cfg: Config, res: BootResult, out: _Collector) -> None:
    chosen = cfg.chosen
    for ep in cfg.endpoints:
        node = ep.node
        nid = id(node)
        realised = nid in res.realised
        involved = nid in res.involved
        d = ep.dialect.value
        if ep.dialect is Dialect.SEED:
            if realised or involved:
                if ep.prop is not None and len(ep.prop.value) > 16:
                    out.add(R.SEED_PROP_EXTRA,
                            f"{node.path}: xen,evtchn has {len(ep.prop.value)} bytes; the "
                            "seed binding reads 4 cells and ignores the rest",
                            [prop_loc(node, ep.prop, 16)], R.hint(R.SEED_PROP_EXTRA), d)
                continue
            if cfg.dialect_mode != "seed":
                out.add(R.SEED_UNMERGED,
                        f"{node.path} is written in the seed dialect (<port-A &domA port-B "
                        "&domB>, decided per node by --dialect auto); Xen 4.17 never merged "
                        "it and skips the node, so this channel is not made",
                        [prop_loc(node, ep.prop), *_seed_domain_locs(cfg, ep)],
                        R.hint(R.SEED_UNMERGED), d)
            elif ep.v1 and not ep.seed_compat:
                out.add(R.SEED_IGNORED,
                        f'{node.path} is an "xen,evtchn-v1" node, which the seed binding '
                        "does not read (--dialect seed)", [loc(node)],
                        R.hint(R.SEED_IGNORED), d)
            elif chosen is None or node.parent is not chosen:
                out.add(R.SEED_PLACE,
                        f"{node.path} is a seed node but not a direct child of /chosen, so "
                        "no channel is made from it", [loc(node)],
                        R.hint(R.SEED_PLACE), d)
            continue
        # xen dialect
        status = node.get("status")
        if (status is not None and status.value.rstrip(b"\0") not in (b"okay", b"ok")
                and (realised or ep.v1)):
                out.add(R.XEN_STATUS_IGNORED,
                        f"{node.path} has status = "
                        f"\"{status.value.rstrip(bytes(1)).decode('latin-1')}\", which "
                        "alloc_domain_evtchn never reads: the channel is made anyway",
                        [loc(node, status.span)],
                        R.hint(R.XEN_STATUS_IGNORED), d)
        if ep.seed_compat and not ep.v1:
            out.add(R.XEN_SEED_MIX,
                    f'{node.path} says compatible = "xen,evtchn" (the seed design and the '
                    'prose of booting.txt); Xen 4.17 only reads "xen,evtchn-v1"',
                    [_compat_loc(ep)], R.hint(R.XEN_SEED_MIX), d)
        elif ep.v1 and len(ep.cells) >= 4:
            out.add(R.XEN_SEED_MIX,
                    f"{node.path} is an xen,evtchn-v1 node written in the seed layout "
                    f"({len(ep.cells)} cells); Xen reads <port &peer-evtchn-node> only",
                    [prop_loc(node, ep.prop)],
                    R.hint(R.XEN_SEED_MIX, "cells"), d)
        if ep.prop is not None and len(ep.prop.value) > 8 and (ep.v1 or realised):
            out.add(R.XEN_PROP_EXTRA,
                    f"{node.path}: xen,evtchn has {len(ep.prop.value)} bytes; Xen reads the "
                    "first 2 cells and ignores the rest", [prop_loc(node, ep.prop, 8)],
                    R.hint(R.XEN_PROP_EXTRA), d)
        if realised:
            if not ep.v1:
                out.add(R.XEN_ONE_SIDED,
                        f"{node.path} is not compatible with xen,evtchn-v1, so Xen skips it; "
                        "its channel exists only because its peer names it",
                        [_compat_loc(ep), *_peer_locs(cfg, ep)],
                        R.hint(R.XEN_ONE_SIDED), d)
            elif nid not in res.walked:
                out.add(R.XEN_ONE_SIDED,
                        f"Xen's walk never visits {node.path}; its channel exists only "
                        "because its peer names it", [loc(node), *_peer_locs(cfg, ep)],
                        R.hint(R.XEN_ONE_SIDED, "not-walked"), d)
            continue
        if involved:
            continue
        if not ep.v1:
            out.add(R.XEN_COMPAT,
                    f"{node.path} is not compatible with xen,evtchn-v1: Xen skips it and "
                    "no channel is made from it", [_compat_loc(ep), *_peer_locs(cfg, ep)],
                    R.hint(R.XEN_COMPAT), d)
        elif nid not in res.walked:
            out.add(R.XEN_NOT_WALKED,
                    f"Xen never visits {node.path} ({_why_not_walked(cfg, res, ep)}), and no "
                    "visited node names it: no channel is made from it",
                    [loc(node), *_peer_locs(cfg, ep)], R.hint(R.XEN_NOT_WALKED), d)


def _enhanced_values(cfg: Config, out: _Collector) -> None:
    known = {"enabled", "disabled", "no-xenstore", "absent", "empty", "unterminated"}
    if cfg.profile.late_xenstore:
        known.add("legacy")
    for spec in cfg.domains:
        if spec.node is None or spec.enhanced in known:
            continue
        prop = spec.node.properties["xen,enhanced"]
        out.add(R.DOM_ENHANCED_VALUE,
                f'{spec.node.path}: xen,enhanced = "{spec.enhanced}" is not a value Xen '
                f'{cfg.profile.name} knows ("enabled", "disabled", "no-xenstore"'
                + (', "legacy"' if cfg.profile.late_xenstore else "")
                + "); construct_domU reads it as not enhanced: no xenstore, no PV "
                "interfaces", [loc(spec.node, prop.span)],
                R.hint(R.DOM_ENHANCED_VALUE), None)


def _seed_domain_locs(cfg: Config, ep: Endpoint) -> list[Loc]:
    out = []
    for ph in ep.cells[1:4:2]:
        n = cfg.find_by_phandle(ph)
        if n is not None:
            out.append(loc(n))
    return out


def _compat_loc(ep: Endpoint) -> Loc:
    prop = ep.node.get("compatible")
    return loc(ep.node, prop.span) if prop is not None else loc(ep.node)


def _peer_locs(cfg: Config, ep: Endpoint) -> list[Loc]:
    if len(ep.cells) >= 2:
        peer = cfg.find_by_phandle(ep.cells[1])
        if peer is not None and peer is not ep.node:
            return [loc(peer)]
    return []


def _why_not_walked(cfg: Config, res: BootResult, ep: Endpoint) -> str:
    node = ep.node
    chosen = cfg.chosen
    if chosen is not None and node.parent is chosen:
        return "a dom0 endpoint directly under /chosen, and there is no dom0"
    if not node.path.startswith("/chosen/"):
        return "it is outside /chosen"
    return "it is deeper than a child of a /chosen child"


def _dup_phandles(cfg: Config, out: _Collector) -> None:
    if not cfg.dup_phandles:
        return
    referenced = {e.cells[1] for e in cfg.endpoints if len(e.cells) >= 2}
    for ph, nodes in cfg.dup_phandles.items():
        if ph in referenced or any(id(n) in cfg.endpoint_of for n in nodes):
            out.add(R.XEN_DUP_PHANDLE,
                    f"phandle {ph:#x} is on {len(nodes)} nodes; Xen's "
                    f"dt_find_node_by_phandle returns the first, {nodes[0].path}",
                    [loc(n) for n in nodes], R.hint(R.XEN_DUP_PHANDLE), "xen")


def _sparse(res: BootResult, out: _Collector) -> None:
    used: dict[int, int] = {}
    for domid, d in res.state.domains.items():
        used[domid] = sum(1 for ch in d.chans.values() if ch.state > ECS_RESERVED)
    for ch in res.channels:
        for node, dom, port, off in ((ch.node_a, ch.dom_a, ch.port_a, 0),
                                     (ch.node_b, ch.dom_b, ch.port_b,
                                      8 if ch.node_a is ch.node_b else 0)):
            n = used.get(dom, 0)
            if port >= EVTCHNS_PER_BUCKET and n < EVTCHNS_PER_BUCKET:
                prop = node.get("xen,evtchn")
                out.add(R.EVT_PORT_SPARSE,
                        f"port {port} in d{dom}, which uses {n} ports: Xen allocates every "
                        f"{EVTCHNS_PER_BUCKET}-port bucket up to it and the guest scans a "
                        "sparse bitmap",
                        [prop_loc(node, prop, off)],
                        R.hint(R.EVT_PORT_SPARSE, top=EVTCHNS_PER_BUCKET - 1),
                        ch.dialect.value)
