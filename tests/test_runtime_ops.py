"""Each hypercall's checks, in Xen 4.17's order, and its effect (spec/semantics.md)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from test_boot_model import System

from evtchn_spec.refimpl.boot import boot
from evtchn_spec.refimpl.evtchn_common import (
    EBUSY,
    EEXIST,
    EINVAL,
    ENOENT,
    ENOSPC,
    ENOSYS,
    EOPNOTSUPP,
    EPERM,
    ESRCH,
)
from evtchn_spec.refimpl.fifo import expand_array, init_control
from evtchn_spec.refimpl.runtime import port_entries
from evtchn_spec.refimpl.xen_state import DOMID_SELF, XenState
from evtchn_spec.refimpl.xen_state import evtchn_set_priority as set_priority


def booted(dom0: bool = True, xsm: str = "silo") -> XenState:
    """dom0 (optional), domU1 (2 vCPUs) <-> domU2 by static ports 10 <-> 11."""
    s = System(dom0=dom0)
    d1 = s.domu("domU1", cpus=2)
    d2 = s.domu("domU2")
    s.pair(d1, 10, d2, 11)
    res = boot(s.config(dialect="xen"))
    assert res.outcome == "booted"
    res.state.xsm = xsm
    return res.state


def port(st_: XenState, dom: int, p: int) -> dict[str, object] | None:
    return next((e for e in port_entries(st_.domains[dom]) if e["port"] == p), None)


def test_boot_leaves_side_b_pending_with_its_upcall() -> None:
    s = booted()
    assert port(s, 2, 11)["pending"] and not port(s, 1, 10)["pending"]  # type: ignore[index]
    assert s.domains[2].evtchn_upcall_pending[0]
    assert s.domains[2].evtchn_pending_sel[0] == 1


def test_status_checks_domain_then_port_range_then_xsm() -> None:
    s = booted()
    assert s.hc_status(1, 9, 1)[0] == -ESRCH
    assert s.hc_status(1, 2, 64)[0] == -EINVAL  # beyond d2's first bucket: range first
    assert s.hc_status(1, 2, 11)[0] == -EPERM  # in range, another domU's table
    rc, out = s.hc_status(0, 2, 11)  # dom0 is privileged
    assert rc == 0 and out == {"status": "interdomain", "dom": 1, "port": 10, "vcpu": 0}
    assert s.hc_status(1, DOMID_SELF, 0) == (0, {"status": "closed", "vcpu": 0})
    assert s.hc_status(1, DOMID_SELF, 63)[1] == {"status": "closed", "vcpu": 0}


def test_alloc_unbound_under_silo_and_dummy() -> None:
    s = booted()
    assert s.hc_alloc_unbound(1, DOMID_SELF, 2) == (-EPERM, None)  # domU -> domU: SILO
    assert s.hc_alloc_unbound(1, DOMID_SELF, 77) == (-ESRCH, None)  # SILO looks it up
    assert s.hc_alloc_unbound(1, 2, 1) == (-EPERM, None)  # on another domain: XSM_TARGET
    assert s.hc_alloc_unbound(1, 99, 1) == (-ESRCH, None)
    assert s.hc_alloc_unbound(1, DOMID_SELF, DOMID_SELF) == (0, 1)  # remote := caller
    assert port(s, 1, 1)["remote_dom"] == 1  # type: ignore[index]
    assert s.hc_alloc_unbound(0, 2, 1) == (0, 1)  # dom0 allocates in d2 for d1
    d = booted(xsm="dummy")
    assert d.hc_alloc_unbound(1, DOMID_SELF, 2) == (0, 1)
    assert d.hc_alloc_unbound(1, DOMID_SELF, 77) == (0, 2)  # dummy: any remote id
    assert d.hc_alloc_unbound(1, 2, 1) == (-EPERM, None)


def test_bind_interdomain_checks_ports_before_xsm() -> None:
    s = booted()
    assert s.hc_bind_interdomain(2, 9, 1) == (-ESRCH, None)
    assert s.hc_bind_interdomain(2, 1, 1) == (-EINVAL, None)  # no such unbound port
    assert s.hc_close(2, 11) == (0, None)  # d1:10 now waits for d2
    assert s.hc_bind_interdomain(2, 1, 10) == (-EPERM, None)  # SILO: only now
    assert s.hc_bind_interdomain(0, 1, 10) == (-EINVAL, None)  # waits for d2, not d0
    d = booted(xsm="dummy")
    d.hc_close(2, 11)
    assert d.hc_bind_interdomain(2, 1, 10) == (0, 1)  # lowest free port, pending
    assert port(d, 2, 1)["pending"] and port(d, 1, 10)["remote_port"] == 1  # type: ignore[index]


def test_close_static_port_leaves_peer_unbound_and_pending() -> None:
    s = booted()
    assert s.hc_close(1, 10) == (0, None)
    assert port(s, 1, 10) is None
    assert port(s, 2, 11) == {"port": 11, "status": "unbound", "remote_dom": 1, "vcpu": 0,
                              "static": True, "pending": True, "masked": False}
    assert s.hc_send(2, 11) == (0, None)  # dropped
    assert s.hc_close(1, 10) == (-EINVAL, None)
    assert s.hc_close(1, 64) == (-EINVAL, None)
    assert s.hc_close(1, 0) == (-EINVAL, None)
    assert s.hc_close(2, 11) == (0, None)
    assert not s.domains[2].evtchn_pending


def test_send_coalesces_mask_holds_upcall_unmask_reraises() -> None:
    s = booted()
    d1 = s.domains[1]
    assert s.hc_send(2, 11) == (0, None)
    assert 10 in d1.evtchn_pending and d1.upcalls == [0]
    assert s.hc_send(2, 11) == (0, None) and d1.upcalls == [0]  # coalesced
    d1.evtchn_pending.clear()
    d1.evtchn_upcall_pending[0] = False
    d1.evtchn_pending_sel[0] = 0
    d1.evtchn_mask.add(10)
    s.hc_send(2, 11)
    assert 10 in d1.evtchn_pending and d1.upcalls == [0]  # no new upcall while masked
    assert s.hc_unmask(1, 10) == (0, None)
    assert 10 not in d1.evtchn_mask and d1.upcalls == [0, 0]
    assert s.hc_unmask(1, 10) == (0, None) and d1.upcalls == [0, 0]  # mask bit was clear
    assert s.hc_unmask(1, 64) == (-EINVAL, None)


def test_unmask_of_a_closed_port_leaves_its_mask_bit() -> None:
    s = booted()
    d1 = s.domains[1]
    d1.evtchn_mask.add(5)
    assert s.hc_unmask(1, 5) == (0, None) and 5 in d1.evtchn_mask  # not usable
    assert s.hc_bind_ipi(1, 0) == (0, 1)
    d1.evtchn_mask.add(1)
    s.hc_close(1, 1)
    assert s.hc_bind_ipi(1, 1) == (0, 1)
    assert port(s, 1, 1)["masked"]  # type: ignore[index]  # evtchn_free keeps the mask


def test_send_on_each_state() -> None:
    s = booted()
    assert s.hc_send(1, 0) == (-EINVAL, None)  # reserved
    assert s.hc_send(1, 5) == (-EINVAL, None)  # free
    assert s.hc_send(1, 64) == (-EINVAL, None)  # beyond the bucket
    assert s.hc_bind_virq(1, 0, 1) == (0, 1)
    assert s.hc_send(1, 1) == (-EINVAL, None)  # virq
    assert s.hc_bind_ipi(1, 1) == (0, 2)
    assert s.hc_send(1, 2) == (0, None) and 2 in s.domains[1].evtchn_pending
    assert s.domains[1].upcalls[-1] == 1  # on the IPI's vCPU


def test_bind_virq_checks() -> None:
    s = booted()
    assert s.hc_bind_virq(1, 24, 0) == (-EINVAL, None)
    assert s.hc_bind_virq(1, 0x80000000, 0) == (-EINVAL, None)
    assert s.hc_bind_virq(1, 2, 1) == (-EINVAL, None)  # global VIRQ on vCPU 1
    assert s.hc_bind_virq(1, 0, 2) == (-ENOENT, None)
    assert s.hc_bind_virq(1, 0, 0) == (0, 1)
    assert s.hc_bind_virq(1, 0, 0) == (-EEXIST, None)
    assert s.hc_bind_virq(1, 0, 1) == (0, 2)  # VIRQ_TIMER is per vCPU
    assert s.hc_bind_virq(1, 2, 0) == (0, 3)
    assert s.hc_bind_vcpu(1, 3, 1) == (0, None)  # a global VIRQ moves
    assert s.hc_bind_virq(1, 2, 0) == (-EEXIST, None)  # still vCPU 0's table
    assert s.hc_bind_vcpu(1, 1, 1) == (-EINVAL, None)  # a per-vCPU one does not
    assert s.hc_close(1, 3) == (0, None)
    assert s.hc_bind_virq(1, 2, 0) == (0, 3)


def test_bind_vcpu_and_ipi_checks() -> None:
    s = booted()
    assert s.hc_bind_vcpu(1, 64, 5) == (-ENOENT, None)  # vCPU before port
    assert s.hc_bind_vcpu(1, 64, 1) == (-EINVAL, None)
    assert s.hc_bind_vcpu(1, 10, 1) == (0, None)
    assert port(s, 1, 10)["vcpu"] == 1  # type: ignore[index]
    assert s.hc_bind_vcpu(2, 11, 1) == (-ENOENT, None)
    assert s.hc_bind_ipi(2, 1) == (-ENOENT, None)
    assert s.hc_bind_ipi(1, 1) == (0, 1)
    assert s.hc_bind_vcpu(1, 1, 0) == (-EINVAL, None)  # IPI
    assert s.hc_bind_vcpu(1, 5, 0) == (-EINVAL, None)  # free


def test_reset_only_self_then_everything_is_closed() -> None:
    s = booted()
    assert s.hc_reset(1, 2) == (-EPERM, None)
    assert s.hc_reset(0, 2) == (-EINVAL, None)  # not paused by its controller
    assert s.hc_reset(1, 9) == (-ESRCH, None)
    assert s.hc_reset(1, DOMID_SELF, resuming=True) == (-EBUSY, None)
    s.hc_bind_ipi(1, 0)
    assert s.hc_reset(1, DOMID_SELF) == (0, None)
    assert port_entries(s.domains[1]) == []
    assert port(s, 2, 11)["status"] == "unbound"  # type: ignore[index]


def test_destroy_leaves_peers_waiting_for_the_dead_domid() -> None:
    s = booted()
    assert s.domain_destroy(1) == 0
    assert port(s, 2, 11)["status"] == "unbound" and port(s, 2, 11)["remote_dom"] == 1  # type: ignore[index]
    assert s.hc_status(2, 1, 0)[0] == -ESRCH
    assert s.hc_bind_interdomain(2, 1, 10)[0] == -ESRCH
    assert s.hc_send(2, 11) == (0, None)


def test_fifo_init_control_and_port_limit() -> None:
    s = booted()
    d0 = s.domains[0]
    for _ in range(4095):
        assert s.hc_bind_ipi(0, 0)[0] == 0
    assert s.hc_bind_ipi(0, 0) == (ENOSPC * -1, None)
    assert set_priority(d0, 1, 3) == -ENOSYS
    assert expand_array(d0) == -EOPNOTSUPP
    assert init_control(d0, 1, 0) == (-ENOENT, None)
    assert init_control(d0, 0, 4032) == (-EINVAL, None)  # crosses the page
    assert init_control(d0, 0, 12) == (-EINVAL, None)  # not 8-byte aligned
    assert init_control(d0, 0, 4024) == (0, {"link_bits": 17})
    assert init_control(d0, 0, 0) == (-EINVAL, None)  # one control block per vCPU
    assert s.hc_bind_ipi(0, 0) == (0, 4096)
    assert set_priority(d0, 1, 16) == -EINVAL and set_priority(d0, 1, 15) == 0


def test_fifo_saves_2l_pending_and_reraises_on_expand() -> None:
    s = booted()
    d2 = s.domains[2]
    assert init_control(d2, 0, 0)[0] == 0
    assert port_entries(d2)[0]["pending"] is False  # no event word yet
    assert d2.chans[11].fifo_saved_pending
    d2.evtchn_upcall_pending[0] = False
    assert expand_array(d2) == 0
    assert port_entries(d2)[0] == {"port": 11, "status": "interdomain", "remote_dom": 1,
                                   "remote_port": 10, "vcpu": 0, "static": True,
                                   "pending": True, "masked": False, "linked": True}
    assert d2.upcalls[-1] == 0
    assert s.hc_close(2, 11) == (0, None)
    assert s.hc_alloc_unbound(2, DOMID_SELF, 2)[1] == 1  # port 11 is still LINKED
    assert s.hc_reset(2, DOMID_SELF) == (0, None) and not d2.evtchn_fifo


@given(st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFF))
def test_status_never_changes_anything(p: int, dom: int) -> None:
    s = booted()
    before = {d: port_entries(x) for d, x in s.domains.items()}
    for caller in (0, 1, 2):
        s.hc_status(caller, dom, p)
    assert before == {d: port_entries(x) for d, x in s.domains.items()}


def test_fifo_event_for_a_vcpu_without_control_block_is_dropped() -> None:
    s = booted()
    d1 = s.domains[1]
    assert init_control(d1, 0, 0)[0] == 0 and expand_array(d1) == 0
    assert s.hc_bind_vcpu(1, 10, 1) == (0, None)  # vCPU 1 has no control block
    assert s.hc_send(2, 11) == (0, None)
    assert 10 not in d1.fifo_pending
    assert init_control(d1, 1, 64)[0] == 0
    s.hc_send(2, 11)
    assert 10 in d1.fifo_pending and d1.fifo_linked[10] == 1 and d1.upcalls[-1] == 1
