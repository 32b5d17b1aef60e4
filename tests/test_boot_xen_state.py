"""Xen's port table (refimpl/xen_state.py) against xen/common/event_channel.c 4.17."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from evtchn_spec.refimpl.evtchn_common import (
    EBUSY,
    ECS_RESERVED,
    EINVAL,
    ENOSPC,
    EPERM,
    ESRCH,
    EVTCHN_2L_NR_CHANNELS,
)
from evtchn_spec.refimpl.xen_state import (
    DOM0_MAX_EVTCHN_PORT,
    DOMU_MAX_EVTCHN_PORT,
    EVTCHNS_PER_BUCKET,
    INT_MAX,
    Domain,
    XenState,
)


def _two() -> XenState:
    s = XenState()
    assert s.domain_create(1, "a", DOMU_MAX_EVTCHN_PORT)[0] == 0
    assert s.domain_create(2, "b", DOMU_MAX_EVTCHN_PORT)[0] == 0
    return s


def test_evtchn_init_reserves_port_0_and_one_bucket() -> None:
    d = Domain(1, "a")
    assert d.evtchn_init(DOMU_MAX_EVTCHN_PORT) == 0
    assert d.state_of(0) == ECS_RESERVED
    assert d.valid_evtchns == EVTCHNS_PER_BUCKET == 64
    assert d.active_evtchns == 0
    assert d.used_ports() == []  # port 0 reads as closed
    assert d.get_free_port() == 1


def test_dom0_limit_is_clamped_to_int_max_and_2l_caps_at_4096() -> None:
    d = Domain(0, "Domain-0")
    d.evtchn_init(DOM0_MAX_EVTCHN_PORT)
    assert d.max_evtchn_port == INT_MAX
    assert EVTCHN_2L_NR_CHANNELS == 4096
    assert d.evtchn_allocate_port(4095) == 0
    assert d.evtchn_allocate_port(4096) == -ENOSPC


def test_domu_limit_is_1023() -> None:
    d = Domain(1, "a")
    d.evtchn_init(DOMU_MAX_EVTCHN_PORT)
    assert d.evtchn_allocate_port(1024) == -ENOSPC
    assert d.evtchn_allocate_port(1023) == 0
    assert d.evtchn_allocate_port(1023) == 0  # still FREE until a caller binds it
    d.evtchn_from_port(1023).state = ECS_RESERVED
    assert d.evtchn_allocate_port(1023) == -EBUSY


def test_buckets_make_every_lower_port_valid() -> None:
    d = Domain(1, "a")
    d.evtchn_init(DOMU_MAX_EVTCHN_PORT)
    assert not d.port_is_valid(200)
    assert d.evtchn_allocate_port(200) == 0
    assert d.valid_evtchns == 256  # buckets 64..127, 128..191, 192..255
    assert d.port_is_valid(255) and not d.port_is_valid(256)
    assert d.port_is_valid(100)  # never allocated, yet valid (reads as closed)


def test_alloc_unbound_and_bind_interdomain_set_pending_on_the_binder() -> None:
    s = _two()
    assert s.evtchn_alloc_unbound(1, 2, 10) == (0, 10)
    assert s.evtchn_bind_interdomain(2, 1, 10, 11) == (0, 11)
    a, b = s.domains[1], s.domains[2]
    (pa,) = a.used_ports()
    (pb,) = b.used_ports()
    assert (pa.status, pa.remote_dom, pa.remote_port, pa.pending) == ("interdomain", 2, 11, False)
    assert (pb.status, pb.remote_dom, pb.remote_port, pb.pending) == ("interdomain", 1, 10, True)
    # the 2-level selector and upcall flag of vCPU 0 follow the pending bit
    assert b.evtchn_pending_sel[0] == 1 and b.evtchn_upcall_pending[0]
    assert not a.evtchn_upcall_pending[0]


def test_bind_checks_local_port_before_remote_port() -> None:
    s = _two()
    s.evtchn_alloc_unbound(2, 1, 5)
    # remote port 0 is RESERVED (-EINVAL), but the local port is checked first
    assert s.evtchn_bind_interdomain(2, 1, 0, 5)[0] == -EBUSY
    assert s.evtchn_bind_interdomain(2, 1, 0, 6)[0] == -EINVAL
    assert s.evtchn_bind_interdomain(2, 9, 1, 6)[0] == -ESRCH
    assert s.evtchn_alloc_unbound(9, 1, 1)[0] == -ESRCH


def test_bind_needs_an_unbound_port_waiting_for_the_binder() -> None:
    s = _two()
    s.domain_create(3, "c", DOMU_MAX_EVTCHN_PORT)
    s.evtchn_alloc_unbound(1, 3, 7)  # waits for d3, not d2
    assert s.evtchn_bind_interdomain(2, 1, 7, 7)[0] == -EINVAL
    assert s.evtchn_bind_interdomain(2, 1, 500, 7)[0] == -EINVAL  # not valid in d1
    assert s.evtchn_bind_interdomain(3, 1, 7, 0) == (0, 1)  # port 0: lowest free


def test_loopback_and_self_bind() -> None:
    s = _two()
    assert s.evtchn_alloc_unbound(1, 1, 3) == (0, 3)
    assert s.evtchn_bind_interdomain(1, 1, 3, 3)[0] == -EBUSY  # the same port twice
    assert s.evtchn_bind_interdomain(1, 1, 3, 4) == (0, 4)


def test_masked_port_gets_pending_without_upcall_and_unmask_reraises() -> None:
    s = _two()
    b = s.domains[2]
    b.evtchn_mask.add(11)
    s.evtchn_alloc_unbound(1, 2, 10)
    s.evtchn_bind_interdomain(2, 1, 10, 11)
    assert 11 in b.evtchn_pending and not b.evtchn_upcall_pending[0]
    assert b.evtchn_2l_unmask(11) is True
    assert b.evtchn_upcall_pending[0]
    assert b.evtchn_2l_unmask(11) is False  # mask already clear: no re-raise


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(min_value=0, max_value=1100), st.booleans()),
                max_size=40))
def test_allocation_matches_a_naive_model(requests: list[tuple[int, bool]]) -> None:
    """Any sequence of evtchn_get_port calls, each either kept (the caller makes
    the port UNBOUND) or abandoned (the caller fails: check_free_port): rc as a
    set-based model says, the lowest free port for 0, and valid_evtchns the
    bucket-rounded high-water mark."""
    d = Domain(1, "a")
    d.evtchn_init(DOMU_MAX_EVTCHN_PORT)
    used = {0}
    high = EVTCHNS_PER_BUCKET
    for port, keep in requests:
        rc = d.evtchn_get_port(port)
        if port == 0:
            want = min(p for p in range(DOMU_MAX_EVTCHN_PORT + 2) if p not in used)
            if want > DOMU_MAX_EVTCHN_PORT:
                assert rc == -ENOSPC
                continue
            assert rc == want
            port = want
        elif port > DOMU_MAX_EVTCHN_PORT:
            assert rc == -ENOSPC
            continue
        elif port in used:
            assert rc == -EBUSY
            continue
        else:
            assert rc == port
        high = max(high, (port // EVTCHNS_PER_BUCKET + 1) * EVTCHNS_PER_BUCKET)
        assert d.valid_evtchns == high  # buckets stay even if the caller fails
        if keep:
            d.evtchn_from_port(port).state = 2  # what alloc_unbound does next
            used.add(port)
        else:
            d.check_free_port(port)
    assert d.active_evtchns == len(used) - 1


def test_silo_forbids_domu_to_domu_at_run_time_but_not_at_boot() -> None:
    """Debian's 4.17 defaults to XSM SILO: after boot a domU may not open a channel
    toward another domU (-EPERM), but may toward dom0; boot code runs as the
    privileged idle domain, so static domU<->domU channels are made."""
    s = XenState(xsm="silo")
    for domid in (0, 1, 2):
        s.domain_create(domid, f"d{domid}", DOMU_MAX_EVTCHN_PORT)
    s.control.add(0)
    assert s.evtchn_alloc_unbound(1, 2, 5) == (0, 5)  # current = idle, booting
    assert s.evtchn_bind_interdomain(2, 1, 5, 6) == (0, 6)
    s.booting = False
    assert s.evtchn_alloc_unbound(1, 2, 0, current=1) == (-EPERM, 0)
    assert s.evtchn_alloc_unbound(1, 0, 0, current=1) == (0, 1)
    assert s.evtchn_bind_interdomain(0, 1, 1, 0, current=0) == (0, 1)
    assert s.evtchn_alloc_unbound(2, 0, 0, current=1) == (-EPERM, 0)  # not its own
    s.evtchn_alloc_unbound(2, 1, 7, current=2)  # refused, nothing allocated
    assert s.domains[2].state_of(7) == 0
    dummy = XenState(xsm="dummy")
    for domid in (1, 2):
        dummy.domain_create(domid, f"d{domid}", DOMU_MAX_EVTCHN_PORT)
    dummy.booting = False
    assert dummy.evtchn_alloc_unbound(1, 2, 0, current=1) == (0, 1)
    assert dummy.evtchn_bind_interdomain(2, 1, 1, 0, current=2) == (0, 1)
