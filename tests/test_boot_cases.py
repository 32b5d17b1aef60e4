"""The reference boot (refimpl/boot.py), case by case, against Xen 4.17's code.

Each expectation is what the cited Xen function does with that tree; the error
lines are byte-exact (XENLOG_ERR text, trailing spaces included).
"""

from __future__ import annotations

from typing import Any

import pytest
from test_boot_model import System, cells, strings

from evtchn_spec.refimpl.boot import boot

PANIC = "Could not set up domains evtchn"


def ports(doc: dict[str, Any], domid: int) -> dict[int, dict[str, Any]]:
    return {p["port"]: p for p in doc["domains"][str(domid)]["ports"]}


def run(s: System, **kw: str) -> dict[str, Any]:
    return boot(s.config(**kw)).to_json()


def test_domu_pair_allocates_on_the_first_visited_and_binds_the_second() -> None:
    s = System(dom0=False)
    a, b = s.domu("a"), s.domu("b")
    s.pair(a, 10, b, 11)
    doc = run(s)
    assert doc["outcome"] == "booted"
    assert ports(doc, 1) == {10: {"port": 10, "status": "interdomain", "remote_dom": 2,
                                  "remote_port": 11, "static": True, "pending": False,
                                  "masked": False}}
    # evtchn_bind_interdomain sets pending on the port it binds
    assert ports(doc, 2)[11]["pending"] is True
    assert set(doc["domains"]) == {"1", "2"}


def test_dom0_endpoint_directly_under_chosen() -> None:
    s = System(dom0=True)
    u = s.domu("u", enhanced="no-xenstore")
    d0 = s.evtchn(s.chosen, "evtchn@1")
    e = s.evtchn(u, "evtchn@2")
    s.set_link(d0, 10, e)
    s.set_link(e, 11, d0)
    doc = run(s)
    assert doc["domains"]["0"]["name"] == "dom0"
    # /chosen/u comes before /chosen/evtchn@1, so Xen reaches u's child first: the
    # domU side is allocated, dom0's bound (and left pending)
    assert ports(doc, 0)[10]["remote_dom"] == 1 and ports(doc, 0)[10]["pending"]
    assert ports(doc, 1)[11]["remote_port"] == 10 and not ports(doc, 1)[11]["pending"]


def test_dom0_endpoint_without_dom0_is_never_visited() -> None:
    s = System(dom0=False)
    u = s.domu("u")
    d0 = s.evtchn(s.chosen, "evtchn@1")
    s.set_link(d0, 10, d0)  # even a self-link: Xen never looks at it
    _ = u
    res = boot(s.config())
    assert res.outcome == "booted" and res.channels == []


def test_domu_pointing_at_a_dom0_node_without_dom0_panics() -> None:
    s = System(dom0=False)
    u = s.domu("u")
    d0 = s.evtchn(s.chosen, "evtchn@1")
    e = s.evtchn(u, "evtchn@2")
    s.set_link(d0, 10, e)
    s.set_link(e, 11, d0)
    doc = run(s)
    assert doc["outcome"] == "panic"
    assert doc["error"] == "evtchn: could not find domains"
    assert doc["panic"] == PANIC
    assert doc["node"] == "/chosen/u/evtchn@2"


def test_xenstore_port_1_is_allocated_at_domain_creation() -> None:
    s = System(dom0=True)
    s.domu("u", enhanced="enabled")
    s.domu("v", enhanced=b"")  # present, no value: also "enabled"
    s.domu("w", enhanced="no-xenstore")
    doc = run(s)
    for domid in (1, 2):
        assert ports(doc, domid) == {1: {"port": 1, "status": "unbound", "remote_dom": 0,
                                         "static": False, "pending": False, "masked": False}}
    assert ports(doc, 3) == {}
    assert ports(doc, 0) == {}


@pytest.mark.parametrize(("first_is_xs", "line"), [
    (True, "evtchn_alloc_unbound() failure (Error -16) "),
    (False, "evtchn_bind_interdomain() failure (Error -16) "),
])
def test_static_port_1_collides_with_xenstore(first_is_xs: bool, line: str) -> None:
    s = System(dom0=True)
    a = s.domu("a", enhanced="enabled" if first_is_xs else "no-xenstore")
    b = s.domu("b", enhanced="no-xenstore" if first_is_xs else "enabled")
    s.pair(a, 1, b, 1)
    doc = run(s)
    assert (doc["outcome"], doc["error"], doc["panic"]) == ("panic", line, PANIC)
    assert doc["rule"] == "EVT-PORT-XENSTORE"


def test_xenstore_without_dom0_panics_in_4_17_and_late_in_4_21() -> None:
    s = System(dom0=False)
    s.domu("a", enhanced="enabled")
    doc = run(s)
    assert doc["panic"] == "At the moment, Xenstore support requires dom0 to be present"
    assert doc["error"] is None
    doc = run(s, xen="4.21")
    assert doc["panic"] == "xenstore requested, but xenstore domain not present"


@pytest.mark.parametrize(("pa", "pb", "line"), [
    (1024, 5, "evtchn_alloc_unbound() failure (Error -28) "),
    (5, 1024, "evtchn_bind_interdomain() failure (Error -28) "),
    (1023, 1023, None),
])
def test_domu_ports_stop_at_1023(pa: int, pb: int, line: str | None) -> None:
    s = System(dom0=False)
    a, b = s.domu("a"), s.domu("b")
    s.pair(a, pa, b, pb)
    doc = run(s)
    if line is None:
        assert doc["outcome"] == "booted"
    else:
        assert doc["error"] == line and doc["rule"] == "EVT-PORT-RANGE"


def test_dom0_ports_stop_at_the_2_level_limit() -> None:
    s = System(dom0=True)
    u = s.domu("u")
    d0 = s.evtchn(s.chosen, "evtchn@1")
    e = s.evtchn(u, "evtchn@2")
    s.set_link(d0, 4095, e)
    s.set_link(e, 3, d0)
    assert run(s)["outcome"] == "booted"
    s.set_link(d0, 4096, e)  # dom0's side is the bind side (walked second)
    assert run(s)["error"] == "evtchn_bind_interdomain() failure (Error -28) "


def test_port_0_first_side_panics_second_side_gets_lowest_free() -> None:
    s = System(dom0=False)
    a, b = s.domu("a"), s.domu("b")
    s.pair(a, 0, b, 5)
    doc = run(s)
    assert doc["error"] == "evtchn_bind_interdomain() failure (Error -22) "
    assert doc["rule"] == "EVT-PORT-ZERO"
    s = System(dom0=False)
    a, b = s.domu("a"), s.domu("b")
    s.pair(a, 5, b, 0)
    s.pair(a, 6, b, 0)
    doc = run(s)
    assert sorted(ports(doc, 2)) == [1, 2]
    assert ports(doc, 2)[1]["remote_port"] == 5 and ports(doc, 2)[2]["remote_port"] == 6


def test_self_link_and_duplicate_port_are_busy() -> None:
    s = System(dom0=False)
    a = s.domu("a")
    n = s.evtchn(a, "evtchn@1")
    s.set_link(n, 7, n)
    doc = run(s)
    assert doc["error"] == "evtchn_bind_interdomain() failure (Error -16) "
    assert doc["rule"] == "XEN-PEER-SELF"
    s = System(dom0=False)
    a, b = s.domu("a"), s.domu("b")
    s.pair(a, 7, b, 7)
    s.pair(a, 7, b, 8)
    doc = run(s)
    assert doc["error"] == "evtchn_alloc_unbound() failure (Error -16) "
    assert doc["rule"] == "EVT-PORT-BUSY"


def test_loopback_pair_in_one_domain_is_accepted() -> None:
    s = System(dom0=False)
    a = s.domu("a")
    s.pair(a, 3, a, 4)
    doc = run(s)
    assert ports(doc, 1)[3]["remote_dom"] == 1 and ports(doc, 1)[3]["remote_port"] == 4
    assert ports(doc, 1)[4]["pending"] and not ports(doc, 1)[3]["pending"]


@pytest.mark.parametrize(("mutate", "error"), [
    ("missing", "xen,evtchn property should not be empty."),
    ("short", "xen,evtchn property value is not valid."),
    ("empty", "xen,evtchn property value is not valid."),
    ("unknown-peer", "evtchn: could not find remote evtchn phandle"),
    ("asymmetric", "xen,evtchn property is not setup correctly."),
    ("peer-missing-prop", "xen,evtchn property should not be empty."),
])
def test_property_errors(mutate: str, error: str) -> None:
    s = System(dom0=False)
    a, b = s.domu("a"), s.domu("b")
    x, y = s.pair(a, 5, b, 6)
    if mutate == "missing":
        del x.properties["xen,evtchn"]
    elif mutate == "short":
        s.prop(x, "xen,evtchn", cells(5))
    elif mutate == "empty":
        s.prop(x, "xen,evtchn", b"")
    elif mutate == "unknown-peer":
        s.set_link(x, 5, 0xDEAD)
    elif mutate == "asymmetric":
        z = s.evtchn(b, "evtchn@9")
        s.set_link(y, 6, z)
    elif mutate == "peer-missing-prop":
        del y.properties["xen,evtchn"]
    doc = run(s)
    assert (doc["outcome"], doc["error"], doc["panic"]) == ("panic", error, PANIC)
    assert doc["node"] == x.path


def test_extra_cells_are_ignored_and_compatible_is_matched_like_xen() -> None:
    s = System(dom0=False)
    a, b = s.domu("a"), s.domu("b")
    x, y = s.pair(a, 5, b, 6, compat_a="XEN,EVTCHN-V1")
    s.set_link(x, 5, y, 99, 100)
    s.prop(y, "compatible", strings("vendor,thing", "xen,evtchn-v1"))
    doc = run(s)
    assert ports(doc, 1)[5]["remote_port"] == 6


def test_one_v1_side_is_enough_and_zero_is_not() -> None:
    s = System(dom0=False)
    a, b = s.domu("a"), s.domu("b")
    s.pair(a, 5, b, 6, compat_b="xen,evtchn")
    doc = run(s)
    assert ports(doc, 2)[6]["remote_port"] == 5
    s = System(dom0=False)
    a, b = s.domu("a"), s.domu("b")
    s.pair(a, 5, b, 6, compat_a="xen,evtchn", compat_b="xen,evtchn")
    doc = run(s)
    assert doc["outcome"] == "booted" and ports(doc, 1) == {} and ports(doc, 2) == {}


def test_back_reference_0_matches_a_node_without_phandle() -> None:
    s = System(dom0=False)
    a, b = s.domu("a"), s.domu("b")
    x = s.node(a, "evtchn@1")  # no phandle
    s.prop(x, "compatible", strings("xen,evtchn-v1"))
    y = s.evtchn(b, "evtchn@2")
    s.set_link(x, 5, y)
    s.set_link(y, 6, 0)
    doc = run(s)
    assert ports(doc, 2)[6]["remote_port"] == 5


def test_peer_deeper_in_the_tree_belongs_to_its_parents_owner() -> None:
    s = System(dom0=True)
    a = s.domu("a")
    holder = s.node(a, "group")
    deep = s.evtchn(holder, "evtchn@2")  # /chosen/a/group/evtchn@2: never walked
    x = s.evtchn(a, "evtchn@1")
    s.set_link(x, 5, deep)
    s.set_link(deep, 6, x)
    doc = run(s)
    # group's owner is the default 0: the endpoint lands in dom0
    assert ports(doc, 0)[6]["remote_dom"] == 1


def test_linux_phandle_is_a_phandle() -> None:
    s = System(dom0=False)
    a, b = s.domu("a"), s.domu("b")
    x = s.node(a, "evtchn@1")
    s.prop(x, "compatible", strings("xen,evtchn-v1"))
    s.prop(x, "linux,phandle", cells(0x77))
    y = s.evtchn(b, "evtchn@2")
    s.set_link(x, 5, y)
    s.set_link(y, 6, 0x77)
    assert ports(run(s), 1)[5]["remote_port"] == 6


def test_domain_creation_panics() -> None:
    s = System(dom0=False)
    s.domu("a", cpus=None)
    doc = run(s)
    assert doc["panic"] == "Missing property 'cpus' for domain a" and doc["error"] is None
    s = System(dom0=False)
    s.domu("a", memory=False)
    doc = run(s)
    assert doc["error"] == 'Error building DomU: cannot read "memory" property'
    assert doc["panic"] == "Could not set up domain a"
    assert run(s, xen="4.21")["panic"] == "Could not set up domain a (rc = -22)"
    s = System(dom0=True)
    s.domu("a", kernel=False)
    doc = run(s)
    assert (doc["error"], doc["panic"]) == ("Missing kernel boot module?",
                                            "Could not set up domain a")
    s = System(dom0=False)
    doc = run(s)
    assert doc["panic"] == "Could not set up DOM0 guest OS"


def test_seed_channel_allocates_on_a_and_binds_b() -> None:
    s = System(dom0=False)
    a, b = s.domu("a"), s.domu("b")
    n = s.node(s.chosen, "evtchn@1")
    s.prop(n, "compatible", strings("xen,evtchn"))
    s.prop(n, "xen,evtchn", cells(10, s.phandle(a), 11, s.phandle(b)))
    doc = run(s, dialect="seed")
    assert doc["dialect"] == "seed"
    assert ports(doc, 1)[10]["remote_port"] == 11 and ports(doc, 2)[11]["pending"]
    # Xen 4.17 itself skips the node ("xen,evtchn" is not "xen,evtchn-v1"), and so
    # do --dialect xen and auto (auto only says that the node is seed)
    for dialect in ("xen", "auto"):
        doc = run(s, dialect=dialect)
        assert ports(doc, 1) == {} and ports(doc, 2) == {}
    assert run(s)["dialect"] == "seed"


def test_seed_errors_use_xen_primitives() -> None:
    s = System(dom0=False)
    a, b = s.domu("a"), s.domu("b")
    n = s.node(s.chosen, "evtchn@1")
    s.prop(n, "compatible", strings("xen,evtchn"))
    s.prop(n, "xen,evtchn", cells(10, s.phandle(a), 2000, s.phandle(b)))
    doc = run(s, dialect="seed")
    assert doc["error"] == "evtchn_bind_interdomain() failure (Error -28) "
    s.prop(n, "xen,evtchn", cells(10, s.phandle(a), 11, 0x999))
    doc = run(s, dialect="seed")
    assert doc["error"] == "evtchn: could not find domains" and doc["rule"] == "SEED-DOMAIN"


def test_bigger_system_is_linear_enough() -> None:
    """2,000 channels over 50 domains boot without panics and in walk order."""
    s = System(dom0=False)
    doms = [s.domu(f"d{i}", enhanced="no-xenstore") for i in range(50)]
    for k in range(2000):
        i, j = k % 50, (k * 7 + 1) % 50
        s.pair(doms[i], 2 + k // 50 * 2, doms[j], 3 + k // 50 * 2)
    res = boot(s.config())
    assert res.outcome == "booted" and len(res.channels) == 2000


def test_4_18_to_4_20_boot_as_4_17_and_4_21_reads_legacy_and_capabilities() -> None:
    """Observed on the real releases (tests/data/xen/xs-port1-side-a-legacy,
    caps-hardware-xenstore-nodom0, caps-xenstore-port-2000-nodom0)."""
    s = System(dom0=True)
    a = s.domu("a", enhanced="legacy")
    b = s.domu("b", enhanced="enabled")
    s.pair(a, 1, b, 2)
    for xen in ("4.17", "4.18", "4.19", "4.20", "4.21", "4.22", "master"):
        doc = run(s, xen=xen)
        assert doc["outcome"] == "booted"
        # 4.17-4.20 do not know "legacy"; 4.21+ ask for xenstore with it but set no
        # HVM_PARAM_STORE_PFN, so initialize_domU_xenstore gives a no channel
        assert ports(doc, 1)[1]["status"] == "interdomain"
        assert ports(doc, 2)[1]["status"] == "unbound"  # b's xenstore port
    s = System(dom0=False)
    hw = s.domu("hw")
    s.prop(hw, "capabilities", cells(2 | 4))  # hardware + xenstore domain
    u = s.domu("u", enhanced="enabled")
    c0 = s.evtchn(s.chosen, "evtchn@1")  # the hardware domain's endpoint
    e = s.evtchn(u, "evtchn@2")
    s.set_link(c0, 3000, e)
    s.set_link(e, 5, c0)
    # QEMU's virt has no IOMMU: a hardware domain that is not direct-mapped stops the boot
    doc = run(s, xen="4.21")
    assert doc["panic"] == "non-direct mapped hardware domain requires iommu"
    assert run(s)["panic"] == "At the moment, Xenstore support requires dom0 to be present"
    s.prop(hw, "capabilities", cells(4))  # the xenstore domain alone: ports above 1023
    s.set_link(c0, 3000, e)
    doc = run(s, xen="4.21")
    assert doc["outcome"] == "panic" and doc["error"] == "evtchn: could not find domains"
