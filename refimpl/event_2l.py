"""The 2-level event-channel ABI (xen/common/event_2l.c, Xen 4.17): every domain's
ABI from evtchn_init until it asks for FIFO (fifo.py), and again after
EVTCHNOP_reset.

The bits live in shared_info (evtchn_pending, evtchn_mask) and vcpu_info
(evtchn_pending_sel, evtchn_upcall_pending): a port is raised by setting its
pending bit and, when it is not masked, its word's selector bit on the notify vCPU
and that vCPU's upcall flag.
"""

from __future__ import annotations

from .evtchn_common import (
    BITS_PER_EVTCHN_WORD,
    EVTCHN_2L_NR_CHANNELS,
    EvtchnDomain,
    EvtchnPortOps,
    vcpu_mark_events_pending,
)


def evtchn_2l_set_pending(d: EvtchnDomain, vcpu: int, port: int) -> bool:
    """evtchn_2l_set_pending: returns whether an upcall was raised."""
    if port in d.evtchn_pending:
        return False
    d.evtchn_pending.add(port)
    if port not in d.evtchn_mask:
        return _select_word(d, vcpu, port)
    return False


def _select_word(d: EvtchnDomain, vcpu: int, port: int) -> bool:
    """Both set_pending and unmask end as Xen's do: set the port's word in the vCPU's
    evtchn_pending_sel, and if it was clear, mark the vCPU's events pending (whether an
    upcall was raised)."""
    word = port // BITS_PER_EVTCHN_WORD
    sel = d.evtchn_pending_sel.get(vcpu, 0)
    if sel >> word & 1:
        return False
    d.evtchn_pending_sel[vcpu] = sel | 1 << word
    return vcpu_mark_events_pending(d, vcpu)


def evtchn_2l_clear_pending(d: EvtchnDomain, port: int) -> None:
    d.evtchn_pending.discard(port)


def evtchn_2l_unmask(d: EvtchnDomain, port: int) -> bool:
    """evtchn_2l_unmask: re-raise only if the mask bit was set and it is pending."""
    ch = d.chans.get(port)
    vcpu = ch.notify_vcpu_id if ch is not None else 0
    if port in d.evtchn_mask:
        d.evtchn_mask.discard(port)
        if port in d.evtchn_pending:
            return _select_word(d, vcpu, port)
    return False


def evtchn_2l_is_pending(d: EvtchnDomain, port: int) -> bool:
    return port < EVTCHN_2L_NR_CHANNELS and port in d.evtchn_pending


def evtchn_2l_is_masked(d: EvtchnDomain, port: int) -> bool:
    return port >= EVTCHN_2L_NR_CHANNELS or port in d.evtchn_mask


# evtchn_port_ops_2l: no is_busy, no set_priority (EVTCHNOP_set_priority: -ENOSYS).
EVTCHN_PORT_OPS_2L = EvtchnPortOps(
    set_pending=evtchn_2l_set_pending,
    clear_pending=evtchn_2l_clear_pending,
    unmask=evtchn_2l_unmask,
    is_pending=evtchn_2l_is_pending,
    is_masked=evtchn_2l_is_masked,
)


def evtchn_2l_init(d: EvtchnDomain) -> None:
    """evtchn_2l_init: the domain's port operations become the 2-level ones."""
    d.evtchn_port_ops = EVTCHN_PORT_OPS_2L
