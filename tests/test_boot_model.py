"""A small builder of resolved trees for the boot/check tests (no parser needed),
and the tests of the config model (refimpl/config.py) built on it.

`System` lays out a dom0less (or dom0) system the way Xen expects it: kernel
modules, `cpus`, `memory`; every node and property gets its own line number, so
that tests can assert where a finding points.
"""

from __future__ import annotations

import struct

import pytest

from evtchn_spec.grammar.errors import Span
from evtchn_spec.grammar.tree import Node, Property, Tree
from evtchn_spec.refimpl.config import Config, Dialect, xen_profile

FILE = "sys.dts"


def cells(*values: int) -> bytes:
    return b"".join(struct.pack(">I", v & 0xFFFFFFFF) for v in values)


def strings(*values: str) -> bytes:
    return b"".join(v.encode() + b"\0" for v in values)


class System:
    """A tree under construction: /chosen with modules, domains and evtchn nodes."""

    def __init__(self, dom0: bool = True) -> None:
        self.line = 0
        self.root = self._node("", None)
        self.chosen = self.node(self.root, "chosen")
        self.prop(self.chosen, "#address-cells", cells(2))
        self.prop(self.chosen, "#size-cells", cells(1))
        self.next_phandle = 1
        self.next_addr = 0x4000_0000
        self.serial = 0
        if dom0:
            self.module(self.chosen, "module@0", "multiboot,kernel")

    # -- raw construction ----------------------------------------------------------
    def _span(self) -> Span:
        self.line += 1
        return Span(FILE, self.line, 1)

    def _node(self, name: str, parent: Node | None) -> Node:
        n = Node(name, self._span(), parent)
        if parent is not None:
            parent.children[name] = n
        return n

    def node(self, parent: Node, name: str) -> Node:
        return self._node(name, parent)

    def prop(self, node: Node, name: str, value: bytes) -> Property:
        p = Property(name, value, self._span())
        node.properties[name] = p
        return p

    def phandle(self, node: Node) -> int:
        if "phandle" not in node.properties:
            self.prop(node, "phandle", cells(self.next_phandle))
            node.phandle = self.next_phandle
            self.next_phandle += 1
        return int.from_bytes(node.properties["phandle"].value[:4], "big")

    def module(self, parent: Node, name: str, kind: str, size: int = 0x100000) -> Node:
        m = self.node(parent, name)
        self.prop(m, "compatible", strings(kind, "multiboot,module"))
        self.prop(m, "reg", cells(0, self.next_addr, size))
        self.next_addr += 0x1000_0000
        return m

    # -- domains and endpoints -------------------------------------------------------
    def domu(self, name: str, *, cpus: int | None = 1, memory: bool = True,
             kernel: bool = True, enhanced: str | bytes | None = None) -> Node:
        d = self.node(self.chosen, name)
        self.prop(d, "compatible", strings("xen,domain"))
        self.prop(d, "#address-cells", cells(2))
        self.prop(d, "#size-cells", cells(1))
        if cpus is not None:
            self.prop(d, "cpus", cells(cpus))
        if memory:
            self.prop(d, "memory", cells(0, 0x40000))
        if enhanced is not None:
            self.prop(d, "xen,enhanced",
                      enhanced if isinstance(enhanced, bytes) else strings(enhanced))
        if kernel:
            self.module(d, "module@1", "multiboot,kernel")
        return d

    def evtchn(self, parent: Node, name: str, compat: str | None = "xen,evtchn-v1") -> Node:
        n = self.node(parent, name)
        if compat is not None:
            self.prop(n, "compatible", strings(compat))
        self.phandle(n)
        return n

    def set_link(self, node: Node, port: int, peer: Node | int, *extra: int) -> None:
        ph = peer if isinstance(peer, int) else self.phandle(peer)
        self.prop(node, "xen,evtchn", cells(port, ph, *extra))

    def pair(self, da: Node, pa: int, db: Node, pb: int, *, compat_a: str = "xen,evtchn-v1",
             compat_b: str = "xen,evtchn-v1") -> tuple[Node, Node]:
        self.serial += 1
        a = self.evtchn(da, f"evtchn@{self.serial}a", compat_a)
        b = self.evtchn(db, f"evtchn@{self.serial}b", compat_b)
        self.set_link(a, pa, b)
        self.set_link(b, pb, a)
        return a, b

    def tree(self) -> Tree:
        t = Tree(self.root, FILE)
        for n in self.root.walk():
            if n.phandle is not None:
                t.phandles[n.phandle] = n
        return t

    def config(self, xen: str = "4.17", dialect: str = "auto") -> Config:
        return Config.from_tree(self.tree(), xen_profile(xen), dialect)


# -- tests of the config model ---------------------------------------------------------


def test_domids_follow_tree_order_of_xen_domain_children_only() -> None:
    s = System(dom0=False)
    s.domu("a")
    other = s.node(s.chosen, "not-a-domain")
    s.prop(other, "compatible", strings("something"))
    s.domu("b")
    weird = s.node(s.chosen, "c")
    s.prop(weird, "compatible", strings("vendor,thing", "XEN,Domain"))  # case-insensitive
    s.prop(weird, "cpus", cells(1))
    cfg = s.config()
    assert [(d.domid, d.name) for d in cfg.domains] == [(1, "a"), (2, "b"), (3, "c")]
    assert not cfg.has_dom0


def test_dom0_exists_iff_a_dom0_kernel_module_or_no_domu_kernel() -> None:
    s = System(dom0=True)
    s.domu("a")
    assert s.config().has_dom0
    s2 = System(dom0=False)
    s2.domu("a")
    assert not s2.config().has_dom0
    s3 = System(dom0=False)  # no kernel at all: Xen still builds dom0 (and fails)
    assert s3.config().has_dom0


def test_first_unknown_module_is_guessed_to_be_the_kernel() -> None:
    s = System(dom0=False)
    m = s.node(s.chosen, "module@0")
    s.prop(m, "compatible", strings("multiboot,module"))
    s.prop(m, "reg", cells(0, 0x1000, 0x1000))
    s.domu("a")
    cfg = s.config()
    assert cfg.dom0_kernel and cfg.has_dom0


@pytest.mark.parametrize(("value", "xenstore"), [
    (None, False), (b"", True), ("enabled", True), ("no-xenstore", False),
    ("disabled", False), ("ENABLED", False), ("legacy", False), (b"enabled", True),
])
def test_xen_enhanced_values_as_4_17_reads_them(value: str | bytes | None,
                                                  xenstore: bool) -> None:
    s = System()
    s.domu("a", enhanced=value)
    (d,) = [d for d in s.config().domains if not d.is_dom0]
    assert d.xenstore is xenstore


def test_legacy_counts_from_4_21() -> None:
    s = System()
    s.domu("a", enhanced="legacy")
    (d,) = [d for d in s.config("4.21").domains if not d.is_dom0]
    # 4.21+ ask for xenstore with "legacy" but give it no channel at boot (observed:
    # tests/data/xen/xs-port1-side-a-legacy)
    assert d.xenstore_requested and not d.xenstore


def test_phandle_as_xen_reads_it_linux_phandle_and_first_wins() -> None:
    s = System()
    a = s.node(s.chosen, "x")
    s.prop(a, "linux,phandle", cells(7))
    b = s.node(s.chosen, "y")
    s.prop(b, "phandle", cells(7))
    cfg = s.config()
    assert cfg.phandle(a) == 7 and cfg.find_by_phandle(7) is a
    assert cfg.dup_phandles[7] == [a, b]
    assert cfg.find_by_phandle(0) is s.root  # nodes without phandle have 0


def test_auto_dialect_decides_per_node() -> None:
    s = System(dom0=False)
    a = s.domu("a")
    b = s.domu("b")
    pa = s.phandle(a)
    pb = s.phandle(b)
    seed = s.node(s.chosen, "evtchn@1")
    s.prop(seed, "compatible", strings("xen,evtchn"))
    s.prop(seed, "xen,evtchn", cells(5, pa, 6, pb))
    x, _ = s.pair(a, 7, b, 8)
    cfg = s.config()
    assert cfg.endpoint_of[id(seed)].dialect is Dialect.SEED
    assert cfg.endpoint_of[id(x)].dialect is Dialect.XEN
    assert cfg.dialects_used == "mixed"
    assert s.config(dialect="xen").endpoint_of[id(seed)].dialect is Dialect.XEN


def test_unknown_xen_version_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown Xen version"):
        xen_profile("3.4")
    assert xen_profile("4.17.3").name == "4.17"
    assert xen_profile("RELEASE-4.19.0").name == "4.19"


MUTATIONS = ("self", "unknown", "drop", "short", "extra", "zero-back")


def mutate_link(s: System, node: Node, mut: str, port: int) -> None:
    """Break one evtchn node the way a hand-edited DT breaks: a self link, a phandle
    to no node, a missing, short or over-long property, a back-reference of 0."""
    if mut == "self":
        s.set_link(node, port, node)
    elif mut == "unknown":
        s.set_link(node, port, 0x7777)
    elif mut == "drop":
        node.properties.pop("xen,evtchn", None)
    elif mut == "short":
        s.prop(node, "xen,evtchn", cells(port))
    elif mut == "extra" and "xen,evtchn" in node.properties:
        s.prop(node, "xen,evtchn", node.properties["xen,evtchn"].value + cells(9))
    elif mut == "zero-back":
        s.set_link(node, port, 0)
