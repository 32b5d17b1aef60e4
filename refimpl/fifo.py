"""The FIFO event-channel ABI (xen/common/event_fifo.c, Xen 4.17), as far as it
can be modelled without guest memory.

Modelled: EVTCHNOP_init_control's checks (-ENOENT vCPU, -EINVAL offset past the
page or unaligned, -EINVAL for a second control block on one vCPU), the switch
from 2-level (the port limit becomes 2^17; every valid port's 2-level pending
bit is saved in evtchn->pending; the domain's port operations become
EVTCHN_PORT_OPS_FIFO), EVTCHNOP_expand_array (one page = 1024 event words, at
most 128 pages, -EOPNOTSUPP before init_control; saved events are re-raised on
the page that covers them), the set_priority hook (xen_state.evtchn_set_priority
makes EVTCHNOP_set_priority's other checks), and per port the PENDING, MASKED and
LINKED bits of the event word: set_pending drops the event when the notify vCPU
has no control block, else sets PENDING and, when neither MASKED nor LINKED,
links the port (LINKED, the port's "busy" state for evtchn_allocate_port) and
raises an upcall when the vCPU's queue was empty and its READY bit was clear.

Not modelled: the control-block gfn and event-array gfns (always assumed to map;
Xen's -EINVAL/-ENOMEM from map_guest_page never happen here), the 16 priority
queues and their order (one queue per vCPU; READY is one bit), BUSY, the LINK
field, and the guest's consumption of a queue other than as the trace's `clear`
(the guest clears PENDING and LINKED of a word) and `ack` (clears READY and
evtchn_upcall_pending). New event-array pages are taken as zeroed by the guest.
"""

from __future__ import annotations

from .evtchn_common import (
    EINVAL,
    ENOENT,
    ENOSPC,
    EOPNOTSUPP,
    EVTCHN_2L_NR_CHANNELS,
    EVTCHN_FIFO_PRIORITY_DEFAULT,
    PAGE_SIZE,
    EvtchnDomain,
    EvtchnPortOps,
    vcpu_mark_events_pending,
)

EVTCHN_FIFO_LINK_BITS = 17
EVTCHN_FIFO_NR_CHANNELS = 1 << EVTCHN_FIFO_LINK_BITS
EVTCHN_FIFO_PRIORITY_MIN = 15
EVENT_WORDS_PER_PAGE = PAGE_SIZE // 4
MAX_EVENT_ARRAY_PAGES = EVTCHN_FIFO_NR_CHANNELS // EVENT_WORDS_PER_PAGE  # 128
# sizeof(evtchn_fifo_control_block_t): ready, _rsvd, head[16], all uint32_t.
SIZEOF_CONTROL_BLOCK = 4 + 4 + 16 * 4


def has_word(d: EvtchnDomain, port: int) -> bool:
    """evtchn_fifo_word_from_port(d, port) != NULL."""
    return port < d.fifo_pages * EVENT_WORDS_PER_PAGE


# -- evtchn_port_ops_fifo ------------------------------------------------------

def evtchn_fifo_set_pending(d: EvtchnDomain, vcpu: int, port: int) -> bool:
    """evtchn_fifo_set_pending: returns whether an upcall was raised."""
    if not has_word(d, port):
        d.evtchn_from_port(port).fifo_saved_pending = True
        return False
    if vcpu not in d.fifo_control:
        return False  # no control block mapped: the event is dropped, PENDING untouched
    d.fifo_pending.add(port)
    if port in d.fifo_masked or port in d.fifo_linked:
        return False
    empty = vcpu not in d.fifo_linked.values()
    d.fifo_linked[port] = vcpu
    if empty and not d.fifo_ready.get(vcpu, False):
        d.fifo_ready[vcpu] = True
        return vcpu_mark_events_pending(d, vcpu)
    return False


def evtchn_fifo_clear_pending(d: EvtchnDomain, port: int) -> None:
    """evtchn_fifo_clear_pending: just the PENDING bit (the guest unlinks)."""
    if has_word(d, port):
        d.fifo_pending.discard(port)


def evtchn_fifo_unmask(d: EvtchnDomain, port: int) -> bool:
    """evtchn_fifo_unmask: clear MASKED; relink if PENDING."""
    if not has_word(d, port):
        return False
    d.fifo_masked.discard(port)
    if port in d.fifo_pending:
        return evtchn_fifo_set_pending(d, d.evtchn_from_port(port).notify_vcpu_id, port)
    return False


def evtchn_fifo_is_pending(d: EvtchnDomain, port: int) -> bool:
    return has_word(d, port) and port in d.fifo_pending


def evtchn_fifo_is_masked(d: EvtchnDomain, port: int) -> bool:
    return not has_word(d, port) or port in d.fifo_masked


def evtchn_fifo_is_busy(d: EvtchnDomain, port: int) -> bool:
    """The LINKED bit of the port's word: evtchn_allocate_port does not reuse it."""
    return has_word(d, port) and port in d.fifo_linked


def evtchn_fifo_set_priority(d: EvtchnDomain, port: int, priority: int) -> int:
    if priority > EVTCHN_FIFO_PRIORITY_MIN:
        return -EINVAL
    d.evtchn_from_port(port).priority = priority
    return 0


EVTCHN_PORT_OPS_FIFO = EvtchnPortOps(
    set_pending=evtchn_fifo_set_pending,
    clear_pending=evtchn_fifo_clear_pending,
    unmask=evtchn_fifo_unmask,
    is_pending=evtchn_fifo_is_pending,
    is_masked=evtchn_fifo_is_masked,
    is_busy=evtchn_fifo_is_busy,
    set_priority=evtchn_fifo_set_priority,
)


# -- the FIFO hypercalls and the way back to 2-level -------------------------------

def evtchn_fifo_destroy(d: EvtchnDomain) -> None:
    """evtchn_fifo_destroy (EVTCHNOP_reset; its caller then calls evtchn_2l_init)."""
    d.evtchn_fifo = False
    d.fifo_control.clear()
    d.fifo_pages = 0
    d.fifo_pending.clear()
    d.fifo_masked.clear()
    d.fifo_linked.clear()
    d.fifo_ready.clear()
    for ch in d.chans.values():
        ch.fifo_saved_pending = False


def init_control(d: EvtchnDomain, vcpu: int, offset: int) -> tuple[int, dict[str, int] | None]:
    """EVTCHNOP_init_control -> evtchn_fifo_init_control (gfn assumed mappable)."""
    if vcpu >= d.max_vcpus:
        return -ENOENT, None
    if offset > PAGE_SIZE - SIZEOF_CONTROL_BLOCK or offset & 7:
        return -EINVAL, None
    if not d.evtchn_fifo:
        prev = EVTCHN_2L_NR_CHANNELS  # max_evtchns(d) latched before the switch
        for port in range(1, min(prev, d.valid_evtchns)):  # setup_ports
            ch = d.chans.get(port)
            if port in d.evtchn_pending:
                d.evtchn_from_port(port).fifo_saved_pending = True
            if ch is not None:
                ch.priority = EVTCHN_FIFO_PRIORITY_DEFAULT
        d.evtchn_fifo = True
        d.evtchn_port_ops = EVTCHN_PORT_OPS_FIFO
        d.fifo_used = True
    elif vcpu in d.fifo_control:  # map_control_block: one per vCPU
        return -EINVAL, None
    d.fifo_control.add(vcpu)
    return 0, {"link_bits": EVTCHN_FIFO_LINK_BITS}


def expand_array(d: EvtchnDomain) -> int:
    """EVTCHNOP_expand_array -> add_page_to_event_array: re-raise saved events."""
    if not d.evtchn_fifo:
        return -EOPNOTSUPP
    if d.fifo_pages >= MAX_EVENT_ARRAY_PAGES:
        return -ENOSPC
    first = d.fifo_pages * EVENT_WORDS_PER_PAGE
    d.fifo_pages += 1
    for port in range(first, d.fifo_pages * EVENT_WORDS_PER_PAGE):
        if not d.port_is_valid(port):
            break
        ch = d.chans.get(port)
        if ch is not None and ch.fifo_saved_pending:
            evtchn_fifo_set_pending(d, ch.notify_vcpu_id, port)
    return 0
