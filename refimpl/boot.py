"""The reference boot: what Xen does with a device tree's static event channels.

`boot(config)` replays, in Xen's order, the part of start_xen (xen/arch/arm/setup.c)
that makes event channels:

  1. create_dom0, unless is_dom0less_mode (no dom0 kernel and some domU kernel);
  2. create_domUs: every /chosen child compatible with xen,domain, domids 1, 2, ...
     in tree order; construct_domU reads xen,enhanced and (4.17-4.20) allocates
     the xenstore port with evtchn_alloc_unbound(d, port 0) -> port 1;
     4.21+ allocates it after all domUs (initialize_domU_xenstore);
  3. alloc_static_evtchn: for each /chosen child C (in tree order), C itself if
     a hardware domain exists, then each child of C: alloc_domain_evtchn(node).
     With --dialect seed, a seed node (a /chosen child) is carried out at C's turn
     with the same primitives (allocate on A, bind on B); otherwise (auto, xen) it is
     skipped exactly as Xen 4.17 skips it, so `boot` matches the real hypervisor.

Every failure Xen turns into a panic is a `Failure` with the exact error line
(XENLOG_ERR, trailing space included) and panic text. With `keep_going=True` the
boot records a failure and carries on, so `check` can report every problem while
the first failure is still the panic Xen would reach. Quirks Xen accepts are
recorded as `Quirk`s for `check` to report as warnings.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from evtchn_spec.grammar.tree import Node

from . import rules as R
from .config import (
    DOMAIN_CAPS_HARDWARE,
    DOMAIN_CAPS_MASK,
    Config,
    Dialect,
    DomainSpec,
    Endpoint,
    Loc,
    loc,
    prop_loc,
)
from .evtchn_common import ENOENT
from .xen_state import EBUSY, EINVAL, ENOSPC, ERRNO_NAMES, PortView, XenState

PANIC_EVTCHN = "Could not set up domains evtchn"
ERR_PROP_EMPTY = "xen,evtchn property should not be empty."
ERR_PROP_INVALID = "xen,evtchn property value is not valid."
ERR_NO_REMOTE = "evtchn: could not find remote evtchn phandle"
ERR_NOT_SETUP = "xen,evtchn property is not setup correctly."
ERR_PARENT_NULL = "evtchn: evtchn parent node is NULL"
ERR_REMOTE_PARENT_NULL = "evtchn: remote parent node is NULL"
ERR_NO_DOMAINS = "evtchn: could not find domains"
ERR_KERNEL = "Missing kernel boot module?"
ERR_MEMORY = 'Error building DomU: cannot read "memory" property'


def err_alloc(rc: int) -> str:
    return f"evtchn_alloc_unbound() failure (Error {rc}) "


def err_bind(rc: int) -> str:
    return f"evtchn_bind_interdomain() failure (Error {rc}) "


@dataclass(frozen=True, slots=True)
class Failure:
    """A check Xen fails: with keep_going=False the first one is the panic."""

    rule: str
    message: str
    locations: tuple[Loc, ...]
    hint: str
    error: str | None  # the line Xen prints before panicking (None if it prints none)
    panic: str
    node: str | None  # the node Xen was working on


@dataclass(frozen=True, slots=True)
class Quirk:
    """Something Xen accepts that `check` reports as a warning."""

    rule: str
    message: str
    locations: tuple[Loc, ...]
    hint: str


@dataclass(frozen=True, slots=True)
class BootChannel:
    """A channel Xen made: side A allocated first, side B bound to it."""

    dialect: Dialect
    node_a: Node
    node_b: Node  # for a seed channel, the same node as node_a
    dom_a: int
    port_a: int
    dom_b: int
    port_b: int


@dataclass(slots=True, eq=False)
class BootResult:
    config: Config
    state: XenState
    domains: list[DomainSpec]
    outcome: str = "booted"
    failure: Failure | None = None
    failures: list[Failure] = field(default_factory=list)
    quirks: list[Quirk] = field(default_factory=list)
    channels: list[BootChannel] = field(default_factory=list)
    realised: set[int] = field(default_factory=set)  # ids of endpoint nodes in a channel
    walked: set[int] = field(default_factory=set)  # ids of nodes alloc_domain_evtchn saw
    involved: set[int] = field(default_factory=set)  # ids of nodes named by a failure
    xenstore_ports: dict[int, int] = field(default_factory=dict)  # domid -> port
    steps: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The `boot --format json` document (ARCHITECTURE.md, spec/boot.md)."""
        doc = self.json_head()
        if "domains" in doc:
            doc["domains"] = dict(self.json_domains())
        return doc

    def json_head(self) -> dict[str, Any]:
        """The document with its `domains` (if booted) left for `json_domains` to give,
        one domain at a time (a writer need not hold them all: render.json_stream)."""
        if self.failure is not None:
            f = self.failure
            return {"format": 1, "outcome": "panic", "error": f.error, "panic": f.panic,
                    "node": f.node, "rule": f.rule, "dialect": self.config.dialects_used}
        return {"format": 1, "outcome": "booted", "domains": None,
                "dialect": self.config.dialects_used}

    def json_domains(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """The `domains` member of the booted document, entry by entry, in order."""
        for spec in self.domains:
            d = self.state.domains.get(spec.domid)
            if d is None:
                continue
            ports = [port_json(pv) for pv in d.used_ports()]
            yield str(spec.domid), {"name": spec.name, "ports": ports}


# The fields of a port entry of `boot --format json` after "port", in order
# (spec/boot.md); remote_dom and remote_port only when the port has a peer. The run
# JSON's entries add virq, vcpu and linked (runtime.PORT_FIELDS).
PORT_FIELDS = ("status", "remote_dom", "remote_port", "static", "pending", "masked")


def port_json(pv: PortView) -> dict[str, Any]:
    """One port as `boot --format json` lists it."""
    entry: dict[str, Any] = {"port": pv.port}
    for f in PORT_FIELDS:
        v = getattr(pv, f)
        if v is not None:
            entry[f] = v
    return entry


def port_line(p: dict[str, Any], not_static: str = "") -> str:
    """One port entry (boot or run JSON) as a line of `boot` and `run` text: its status,
    its peer (`-> dD:P`, `(waiting for dD)`, or `virq V`) and its flags; `not_static`
    is the flag of a port no DT node declared."""
    peer = (f" -> d{p['remote_dom']}:{p['remote_port']}" if "remote_port" in p else
            f" (waiting for d{p['remote_dom']})" if "remote_dom" in p else
            f" virq {p['virq']}" if "virq" in p else "")
    flags = "".join([" static" if p["static"] else not_static,
                     " pending" if p["pending"] else "", " masked" if p["masked"] else ""])
    return f"    port {p['port']:4d} {p['status']}{peer}{flags}"


class _Panic(Exception):
    pass


class _Boot:
    """One run of the procedure; `boot()` is the entry point."""

    def __init__(self, cfg: Config, keep_going: bool, trace: bool) -> None:
        self.cfg = cfg
        self.keep_going = keep_going
        self.trace = trace
        self.state = XenState()
        self.created: set[int] = set()  # dt_device_static_evtchn_created
        self.domain_by_node: dict[int, DomainSpec] = {}
        self.hwdom: int | None = None
        self.xs_domid: int | None = None
        self.res = BootResult(cfg, self.state, [])

    # -- bookkeeping ---------------------------------------------------------
    def step(self, text: str) -> None:
        if self.trace:
            self.res.steps.append(text)

    def fail(self, rule: str, message: str, nodes: list[Loc], hint: str,
             error: str | None, panic: str, node: Node | None,
             involved: tuple[Node, ...] = ()) -> None:
        f = Failure(rule, message, tuple(nodes), hint, error, panic,
                    node.path if node is not None else None)
        self.res.failures.append(f)
        for n in involved:
            self.res.involved.add(id(n))
        self.step(f"FAIL [{rule}] {message}")
        if not self.keep_going:
            raise _Panic()

    def quirk(self, rule: str, message: str, nodes: list[Loc], hint: str) -> None:
        self.res.quirks.append(Quirk(rule, message, tuple(nodes), hint))

    def dom0_panic(self, rc: int) -> str:
        prof = self.cfg.profile
        who = "d0" if prof.dom0_by_pd else "DOM0"
        return f"Could not set up {who} guest OS" + (f" (rc = {rc})" if prof.rc_in_panics
                                                     else "")

    def domain_panic(self, text_417: str, rc: int) -> str:
        if self.cfg.profile.rc_in_panics:
            return f"{text_417} (rc = {rc})"
        return text_417

    # -- 1. dom0 ---------------------------------------------------------------
    def create_dom0(self) -> None:
        cfg = self.cfg
        if not cfg.has_dom0:
            self.step("is_dom0less_mode: no dom0 kernel and a domU kernel: no dom0")
            return
        self.step("is_dom0less_mode: false (a dom0 kernel, or no domU kernel): build dom0")
        spec = cfg.domains[0]
        self.state.domain_create(0, spec.name, spec.max_evtchn_port, spec.vcpus or 1)
        self.state.control.add(0)  # CDF_privileged
        self.res.domains.append(spec)
        self.hwdom = 0
        self.xs_domid = 0
        self.step("create_dom0: d0, max_evtchn_port -1 (INT_MAX), 2-level ABI, "
                  "port 0 reserved")
        if not cfg.dom0_kernel_ok():
            where = [loc(cfg.chosen)] if cfg.chosen is not None else [loc(cfg.tree.root)]
            self.fail(R.DOM_NO_KERNEL,
                      "no dom0 kernel module and no domU kernel module: Xen builds dom0 "
                      "and kernel_probe finds no kernel",
                      where,
                      R.hint(R.DOM_NO_KERNEL),
                      ERR_KERNEL, self.dom0_panic(-ENOENT), None)

    # -- 2. domUs --------------------------------------------------------------
    def create_domUs(self) -> None:
        cfg = self.cfg
        prof = cfg.profile
        need_xenstore: list[DomainSpec] = []
        for spec in cfg.domains:
            if spec.is_dom0:
                continue
            node = spec.node
            assert node is not None
            name = spec.name
            props = node.properties
            if prof.late_xenstore and "capabilities" in props:
                caps = spec.capabilities
                if caps & ~DOMAIN_CAPS_MASK:
                    self.fail(R.DOM_CAPS, f"capabilities {caps:#x} has unknown bits",
                              [loc(node, props["capabilities"].span)],
                              R.hint(R.DOM_CAPS),
                              None, f"Invalid capabilities ({caps:x})", node, (node,))
                if caps & DOMAIN_CAPS_HARDWARE and self.hwdom is not None:
                    self.fail(R.DOM_CAPS, "a second hardware domain",
                              [loc(node, props["capabilities"].span)],
                              R.hint(R.DOM_CAPS, "hardware"),
                              None, f"Only 1 hardware domain can be specified! (d{self.hwdom})",
                              node, (node,))
            if "direct-map" in props and not (prof.static_memory
                                              and "xen,static-mem" in props):
                self.fail(R.DOM_DIRECT_MAP,
                          f"{name}: direct-map without static memory (xen,static-mem, "
                          "and CONFIG_STATIC_MEMORY, which Debian's builds lack)",
                          [loc(node, props["direct-map"].span)],
                          R.hint(R.DOM_DIRECT_MAP), None,
                          f"direct-map is not valid for domain {name} without static "
                          "allocation.", node, (node,))
            if spec.vcpus is None:
                self.fail(R.DOM_CPUS, f"{name}: no 32-bit `cpus` property", [loc(node)],
                          R.hint(R.DOM_CPUS), None,
                          f"Missing property 'cpus' for domain {name}", node, (node,))
            if (prof.late_xenstore and spec.capabilities & 2
                    and "direct-map" not in props):
                # parse_dom0less_node: a hardware domain needs an IOMMU unless it is
                # direct-mapped; the modelled machine (QEMU's virt) has none.
                self.fail(R.DOM_CAPS, f"{name}: a hardware domain (capabilities "
                          f"{spec.capabilities:#x}) that is not direct-mapped needs an "
                          "IOMMU, and the machine has none",
                          [loc(node, props["capabilities"].span)],
                          R.hint(R.DOM_CAPS, "iommu"), None,
                          "non-direct mapped hardware domain requires iommu", node, (node,))
            if spec.vcpus == 0:
                self.fail(R.DOM_CPUS, f"{name}: cpus = <0>: domain_create refuses a "
                          "domain without vCPUs", [loc(node, props["cpus"].span)],
                          R.hint(R.DOM_CPUS, "zero"), None,
                          self.domain_panic_create(name), node, (node,))
            self.state.domain_create(spec.domid, name, spec.max_evtchn_port,
                                     spec.vcpus or 1)
            self.domain_by_node[id(node)] = spec
            self.res.domains.append(spec)
            if prof.late_xenstore and spec.capabilities & 2 and self.hwdom is None:
                self.hwdom = spec.domid
            if prof.late_xenstore and spec.capabilities & 1:
                self.state.control.add(spec.domid)  # DOMAIN_CAPS_CONTROL: CDF_privileged
            self.step(f"create_domUs: {node.path} -> d{spec.domid} ({name}), "
                      f"max_evtchn_port {spec.effective_max_port}, port 0 reserved")
            # construct_domU
            mem = props.get("memory")
            if mem is None or len(mem.value) < 8:
                self.fail(R.DOM_MEMORY, f"{name}: no 64-bit `memory` property "
                          "(dt_property_read_u64 needs 8 bytes)",
                          [loc(node, mem.span) if mem is not None else loc(node)],
                          R.hint(R.DOM_MEMORY), ERR_MEMORY,
                          self.domain_panic(f"Could not set up domain {name}", -EINVAL),
                          node, (node,))
            if spec.xenstore_requested and prof.late_xenstore:
                need_xenstore.append(spec)
            elif spec.xenstore and self.hwdom is None:
                self.fail(R.DOM_XENSTORE,
                          f"{name}: xen,enhanced ({spec.enhanced}) asks for xenstore, "
                          "which needs dom0, and there is none",
                          [loc(node, props["xen,enhanced"].span)],
                          R.hint(R.DOM_XENSTORE),
                          None, "At the moment, Xenstore support requires dom0 to be "
                          "present", node, (node,))
            if not cfg.kernel_ok(node):
                self.fail(R.DOM_KERNEL, f"{name}: no kernel boot module",
                          [loc(node)],
                          R.hint(R.DOM_KERNEL), ERR_KERNEL,
                          self.domain_panic(f"Could not set up domain {name}", -ENOENT),
                          node, (node,))
            if prof.late_xenstore and spec.capabilities & 4:
                if self.xs_domid is not None:
                    # set_xs_domain after construct_domU (no newline in Xen's format)
                    self.fail(R.DOM_CAPS, f"{name}: a second xenstore domain (d"
                              f"{self.xs_domid} is one already)",
                              [loc(node, props["capabilities"].span)],
                              R.hint(R.DOM_CAPS, "xenstore"), None,
                              f"Only 1 xenstore domain can be specified! ({self.xs_domid})",
                              node, (node,))
                else:
                    self.xs_domid = spec.domid
            if spec.xenstore and not prof.late_xenstore and self.hwdom is not None:
                self.alloc_xenstore_evtchn(spec, self.hwdom)
        if prof.late_xenstore:
            if need_xenstore and self.xs_domid is None:
                first = need_xenstore[0]
                assert first.node is not None
                self.fail(R.DOM_XENSTORE,
                          "xen,enhanced asks for xenstore and no domain is the xenstore "
                          "domain", [loc(d.node, d.node.properties["xen,enhanced"].span)
                                     for d in need_xenstore if d.node is not None],
                          R.hint(R.DOM_XENSTORE, "late-xenstore"), None,
                          "xenstore requested, but xenstore domain not present", None,
                          tuple(d.node for d in need_xenstore if d.node is not None))
            if self.xs_domid is not None:
                # initialize_domU_xenstore: for_each_domain (domid order), a domain
                # with HVM_PARAM_STORE_PFN set ("legacy" sets none) that is not itself
                # a xenstore domain
                for spec in sorted(need_xenstore, key=lambda s: s.domid):
                    if spec.xenstore and not spec.capabilities & 4:
                        self.alloc_xenstore_evtchn(spec, self.xs_domid)

    def domain_panic_create(self, name: str) -> str:
        if self.cfg.profile.rc_in_panics:
            return f"Error creating domain {name} (rc = {-EINVAL})"
        return f"Error creating domain {name}"

    def alloc_xenstore_evtchn(self, spec: DomainSpec, remote: int) -> None:
        rc, port = self.state.evtchn_alloc_unbound(spec.domid, remote, 0)
        if rc == 0:
            self.res.xenstore_ports[spec.domid] = port
            self.step(f"alloc_xenstore_evtchn: d{spec.domid} port {port} unbound "
                      f"-> d{remote} (xen,enhanced {spec.enhanced})")

    # -- 3. static channels ------------------------------------------------------
    def used_by(self, node: Node) -> int:
        """dt_device_used_by: domid of a xen,domain node, the hardware domain for
        /chosen, 0 (unflatten's default) for every other node."""
        spec = self.domain_by_node.get(id(node))
        if spec is not None:
            return spec.domid
        if node is self.cfg.chosen and self.hwdom is not None:
            return self.hwdom
        return 0

    def alloc_static_evtchn(self) -> None:
        cfg = self.cfg
        chosen = cfg.chosen
        if chosen is None:
            return
        hw = self.hwdom is not None
        for child in chosen.children.values():
            ep = cfg.endpoint_of.get(id(child))
            if ep is not None and ep.dialect is Dialect.SEED and cfg.dialect_mode == "seed":
                self.seed_evtchn(ep)
            elif hw:
                self.alloc_domain_evtchn(child)
            for sub in child.children.values():
                self.alloc_domain_evtchn(sub)

    def _prop_cells(self, node: Node, side: str, origin: Node) -> tuple[int, int] | None:
        """get_evtchn_dt_property: (port, phandle) or a failure."""
        prop = node.get("xen,evtchn")
        if prop is None:
            self.fail(R.XEN_PROP_MISSING,
                      f"{side} {node.path} has no xen,evtchn property",
                      [loc(node)] + ([loc(origin)] if origin is not node else []),
                      R.hint(R.XEN_PROP_MISSING), ERR_PROP_EMPTY, PANIC_EVTCHN, origin,
                      (node, origin))
            return None
        if len(prop.value) < 8:
            self.fail(R.XEN_PROP_SHORT,
                      f"{side} {node.path}: xen,evtchn is {len(prop.value)} bytes, Xen "
                      "needs 2 cells", [prop_loc(node, prop)]
                      + ([loc(origin)] if origin is not node else []),
                      R.hint(R.XEN_PROP_SHORT),
                      ERR_PROP_INVALID, PANIC_EVTCHN, origin, (node, origin))
            return None
        cells = prop.cells()
        return cells[0], cells[1]

    def alloc_domain_evtchn(self, node: Node) -> None:
        cfg = self.cfg
        ep = cfg.endpoint_of.get(id(node))
        if ep is None:  # every xen,evtchn-v1 node is an endpoint: this one is not
            return
        self.res.walked.add(id(node))
        if not ep.v1:
            if self.trace:
                self.step(f"alloc_domain_evtchn({node.path}): not xen,evtchn-v1, skipped")
            return
        if ep is not None and ep.dialect is Dialect.SEED and self.cfg.dialect_mode == "seed":
            return  # --dialect seed: only seed nodes make channels
        if id(node) in self.created:
            if self.trace:
                self.step(f"alloc_domain_evtchn({node.path}): already made from its peer")
            return
        if self.trace:
            self.step(f"alloc_domain_evtchn({node.path})")
        got = self._prop_cells(node, "node", node)
        if got is None:
            return
        port1, ph = got
        remote = cfg.find_by_phandle(ph)
        prop = node.get("xen,evtchn")
        assert prop is not None  # (_prop_cells read it)
        if remote is None:
            self.fail(R.XEN_PEER_UNKNOWN,
                      f"{node.path}: xen,evtchn names phandle {ph:#x}, which no node has",
                      [prop_loc(node, prop, 4)],
                      R.hint(R.XEN_PEER_UNKNOWN),
                      ERR_NO_REMOTE, PANIC_EVTCHN, node, (node,))
            return
        got2 = self._prop_cells(remote, "peer", node)
        if got2 is None:
            return
        port2, back = got2
        rprop = remote.get("xen,evtchn")
        assert rprop is not None
        my_ph = cfg.phandle(node)
        if my_ph != back:
            self.fail(R.XEN_PEER_ASYMMETRIC,
                      f"{node.path} points at {remote.path}, which points at phandle "
                      f"{back:#x}, not back at it (phandle {my_ph:#x})",
                      [prop_loc(node, prop, 4), prop_loc(remote, rprop, 4)],
                      R.hint(R.XEN_PEER_ASYMMETRIC, peer=remote.path, port=port2,
                             label=_label(node)), ERR_NOT_SETUP, PANIC_EVTCHN, node, (node, remote))
            return
        if my_ph == 0:
            self.quirk(R.XEN_PHANDLE_ZERO,
                       f"{remote.path} points back with phandle 0, which Xen accepts only "
                       f"because {node.path} has no phandle",
                       [prop_loc(remote, rprop, 4), loc(node)],
                       R.hint(R.XEN_PHANDLE_ZERO, node=node.path, port=port2))
        p1 = node.parent
        p2 = remote.parent
        if p1 is None:  # pragma: no cover - a walked node always has a parent
            self.fail(R.XEN_PEER_ROOT, "evtchn node without parent", [loc(node)], "",
                      ERR_PARENT_NULL, PANIC_EVTCHN, node, (node,))
            return
        if p2 is None:
            self.fail(R.XEN_PEER_ROOT,
                      f"{node.path} points at the root node, which has no parent domain",
                      [prop_loc(node, prop, 4), loc(remote)],
                      R.hint(R.XEN_PEER_ROOT),
                      ERR_REMOTE_PARENT_NULL, PANIC_EVTCHN, node, (node, remote))
            return
        d1 = self.state.get_domain_by_id(self.used_by(p1))
        d2 = self.state.get_domain_by_id(self.used_by(p2))
        if d1 is None or d2 is None:
            bad = [n for n, d in ((node, d1), (remote, d2)) if d is None]
            why = "; ".join(self._no_domain_reason(n) for n in bad)
            self.fail(R.XEN_DOMAIN_UNKNOWN, why,
                      [loc(n) for n in bad] + [loc(n) for n in (node, remote) if n not in bad],
                      R.hint(R.XEN_DOMAIN_UNKNOWN),
                      ERR_NO_DOMAINS, PANIC_EVTCHN, node, (node, remote))
            return
        for n, parent in ((node, p1), (remote, p2)):
            if id(parent) not in self.domain_by_node and parent is not cfg.chosen:
                self.quirk(R.XEN_DOM0_IMPLICIT,
                           f"{n.path} sits in {parent.path}, which is no domain node: Xen "
                           "gives it to d0 only because every node's owner defaults to 0",
                           [loc(n), loc(parent)],
                           R.hint(R.XEN_DOM0_IMPLICIT))
        self._connect(Dialect.XEN, node, remote, d1.domid, port1, d2.domid, port2,
                      prop, rprop, 0, 0)

    def _no_domain_reason(self, n: Node) -> str:
        parent = n.parent
        assert parent is not None
        if parent is self.cfg.chosen:
            return (f"{n.path} is dom0's (directly under /chosen) but there is no dom0 "
                    "(no dom0 kernel module)")
        return (f"{n.path} sits in {parent.path}, which is no domain Xen created, so its "
                "owner is the default domid 0, and there is no dom0")

    def _connect(self, dialect: Dialect, na: Node, nb: Node, da: int, pa: int, db: int,
                 pb: int, prop_a: Any, prop_b: Any, off_a: int, off_b: int) -> None:
        """evtchn_alloc_unbound on A, then evtchn_bind_interdomain on B."""
        st = self.state
        origin = na
        # the cells' places are made only for a finding (most channels have none:
        # at 10,000 channels they were a quarter of check's own time)
        rc, real_a = st.evtchn_alloc_unbound(da, db, pa, node=na.path)
        if rc < 0:
            self._port_failure(rc, "alloc", da, pa, prop_loc(na, prop_a, off_a),
                               prop_loc(nb, prop_b, off_b), na, nb, origin, dialect)
            return
        if self.trace:
            self.step(f"evtchn_alloc_unbound(d{da} port {pa} -> d{db}) = 0: port {real_a} "
                      "unbound")
        rc, real_b = st.evtchn_bind_interdomain(db, da, pa, pb, node=nb.path)
        if rc < 0:
            if self.keep_going:  # undo side A so later findings are not knock-ons
                st.domains[da].evtchn_free(real_a)
            self._port_failure(rc, "bind", db, pb, prop_loc(nb, prop_b, off_b),
                               prop_loc(na, prop_a, off_a), na, nb, origin, dialect,
                               port_a=pa)
            return
        if self.trace:
            self.step(f"evtchn_bind_interdomain(d{db} port {pb} -> d{da}:{pa}) = 0: "
                      f"d{db}:{real_b} <-> d{da}:{real_a}, d{db}:{real_b} pending")
        self.created.add(id(na))
        self.created.add(id(nb))
        self.res.realised.add(id(na))
        self.res.realised.add(id(nb))
        self.res.channels.append(BootChannel(dialect, na, nb, da, real_a, db, real_b))
        if pb == 0:
            self.quirk(R.EVT_PORT_DYNAMIC,
                       f"{nb.path} asks for port 0: Xen binds it to the lowest free port "
                       f"of d{db}, {real_b}, and tells nobody",
                       [prop_loc(nb, prop_b, off_b), prop_loc(na, prop_a, off_a)],
                       R.hint(R.EVT_PORT_DYNAMIC, port=real_b))
        if da == db:
            self.quirk(R.EVT_LOOPBACK,
                       f"{na.path} and {nb.path} are both in d{da}: a loopback channel "
                       f"(ports {real_a} and {real_b})",
                       [loc(na), loc(nb)] if na is not nb else [loc(na)],
                       R.hint(R.EVT_LOOPBACK))

    def _port_failure(self, rc: int, op: str, dom: int, port: int, here: Loc, other: Loc,
                      na: Node, nb: Node, origin: Node, dialect: Dialect,
                      port_a: int = -1) -> None:
        line = err_alloc(rc) if op == "alloc" else err_bind(rc)
        d = self.state.domains[dom]
        name = ERRNO_NAMES.get(-rc, str(rc))
        nodes = (na, nb)
        if rc == -ENOSPC:
            limit = min(d.max_evtchn_port, d.max_evtchns() - 1)
            what = (f"port 0 asks for the lowest free port of d{dom} and every port up to "
                    "the highest Xen allows there is taken" if port == 0 else
                    f"port {port} in d{dom} is above the highest port Xen allows there")
            self.fail(R.EVT_PORT_RANGE,
                      f"{what} ({limit}: max_evtchn_port {d.max_evtchn_port}, 2-level limit "
                      f"{d.max_evtchns()}) -> {name}",
                      [here, other], R.hint(R.EVT_PORT_RANGE, limit=limit), line,
                      PANIC_EVTCHN, origin, nodes)
        elif rc == -EBUSY and na is nb:
            self.fail(R.XEN_PEER_SELF,
                      f"{na.path} is its own peer: Xen allocates port {port} in d{dom}, "
                      f"then binding the same port fails with {name}",
                      [here], R.hint(R.XEN_PEER_SELF), line,
                      PANIC_EVTCHN, origin, nodes)
        elif rc == -EBUSY and self.res.xenstore_ports.get(dom) == port:
            self.fail(R.EVT_PORT_XENSTORE,
                      f"port {port} in d{dom} is the xenstore channel Xen allocated at "
                      f"domain creation (xen,enhanced) -> {name}",
                      [here, other],
                      R.hint(R.EVT_PORT_XENSTORE, dom=dom),
                      line, PANIC_EVTCHN, origin, nodes)
        elif rc == -EBUSY:
            holder = d.chans.get(port)
            who = holder.static_node if holder is not None and holder.static_node else (
                "an earlier channel")
            extra: list[Loc] = []
            hn = self.cfg.tree.find(who) if who.startswith("/") else None
            if hn is not None:
                extra.append(loc(hn))
            self.fail(R.EVT_PORT_BUSY,
                      f"port {port} in d{dom} is already used by {who} -> {name}",
                      [here, other, *extra], R.hint(R.EVT_PORT_BUSY),
                      line, PANIC_EVTCHN, origin, nodes)
        elif rc == -EINVAL and op == "bind" and port_a == 0:
            self.fail(R.EVT_PORT_ZERO,
                      f"{na.path} asks for port 0 on the side Xen allocates first: Xen "
                      f"picks a free port, then binds d{dom} to port 0 (reserved) -> {name}",
                      [other, here], R.hint(R.EVT_PORT_ZERO), line,
                      PANIC_EVTCHN, origin, nodes)
        else:  # pragma: no cover - no other rc is reachable from the device tree
            self.fail(R.EVT_PORT_BUSY, f"{op} failed with {rc}", [here, other], "", line,
                      PANIC_EVTCHN, origin, nodes)

    # -- seed dialect ----------------------------------------------------------
    def seed_evtchn(self, ep: Endpoint) -> None:
        """A seed node: <port-A &domA port-B &domB>, allocate on A, bind on B."""
        node = ep.node
        self.res.walked.add(id(node))
        if id(node) in self.created:
            return
        prop = ep.prop
        if prop is None or len(prop.value) < 16:
            self.fail(R.SEED_PROP,
                      f"{node.path}: a seed node needs xen,evtchn = <port-A &domA port-B "
                      "&domB> (4 cells)", [prop_loc(node, prop)],
                      R.hint(R.SEED_PROP), ERR_PROP_EMPTY if prop is None else
                      ERR_PROP_INVALID, PANIC_EVTCHN, node, (node,))
            return
        pa, pha, pb, phb = ep.cells[:4]
        doms: list[DomainSpec] = []
        for off, ph in ((4, pha), (12, phb)):
            target = self.cfg.find_by_phandle(ph)
            spec = self.domain_by_node.get(id(target)) if target is not None else None
            if spec is None:
                what = "no node" if target is None else f"{target.path}, not a domain Xen created"
                self.fail(R.SEED_DOMAIN,
                          f"{node.path}: phandle {ph:#x} names {what}",
                          [prop_loc(node, prop, off)],
                          R.hint(R.SEED_DOMAIN),
                          ERR_NO_DOMAINS, PANIC_EVTCHN, node, (node,))
                return
            doms.append(spec)
        self._connect(Dialect.SEED, node, node, doms[0].domid, pa, doms[1].domid, pb,
                      prop, prop, 0, 8)


def _label(node: Node) -> str:
    return node.labels[0] if node.labels else node.name.replace("@", "_").replace(",", "_")


def boot(cfg: Config, *, keep_going: bool = False, trace: bool = False) -> BootResult:
    """Run the reference boot. With keep_going, every failure is recorded (the first
    is the panic) and the walk continues."""
    b = _Boot(cfg, keep_going, trace)
    res = b.res
    try:
        if cfg.module_problem is not None:
            mnode, text = cfg.module_problem
            b.fail(R.DOM_MODULE_REG, text, [loc(mnode)],
                   R.hint(R.DOM_MODULE_REG),
                   None, text, mnode, (mnode,))
        b.create_dom0()
        b.create_domUs()
        b.step("alloc_static_evtchn: walk /chosen")
        b.alloc_static_evtchn()
    except _Panic:
        pass
    if res.failures:
        res.outcome = "panic"
        res.failure = res.failures[0]
    else:
        res.state.booting = False  # xsm_set_system_active, then the domains run
    return res


def to_text(res: BootResult) -> str:
    """The boot as numbered steps, then the outcome and every domain's ports."""
    cfg = res.config
    lines = [f"reference boot, Xen {cfg.profile.name}, dialect {cfg.dialects_used} "
             f"(--dialect {cfg.dialect_mode})"]
    lines += [f"{i:4d}. {s}" for i, s in enumerate(res.steps, 1)]
    if res.failure is not None:
        f = res.failure
        if f.error is not None:
            lines.append(f"(XEN) {f.error}")
        lines.append(f"(XEN) Panic: {f.panic}  [{f.rule}]"
                     + (f" at {f.node}" if f.node else ""))
        return "\n".join(lines) + "\n"
    lines.append("booted")
    for spec in res.domains:
        d = res.state.domains.get(spec.domid)
        if d is None:
            continue
        lines.append(f"d{spec.domid} {spec.name}:")
        ports = d.used_ports()
        if not ports:
            lines.append("    (no ports)")
        for pv in ports:
            # (boot makes only DT-declared ports and the xenstore one, which Xen
            # allocates: so a port not static says so; `run` cannot know who did)
            lines.append(port_line(port_json(pv), " xen-allocated")
                         + (f"  {pv.node}" if pv.node else ""))
    if not cfg.endpoints:
        lines.append("no event channels declared in this device tree")
    return "\n".join(lines) + "\n"
