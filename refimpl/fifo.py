"""The FIFO event-channel ABI (xen/common/event_fifo.c, Xen 4.17), as far as it
can be modelled without guest memory.

Modelled: EVTCHNOP_init_control's checks (-ENOENT vCPU, -EINVAL offset past the
page or unaligned, -EINVAL for a second control block on one vCPU), the switch
from 2-level (the port limit becomes 2^17; every valid port's 2-level pending
bit is saved in evtchn->pending), EVTCHNOP_expand_array (one page = 1024 event
words, at most 128 pages, -EOPNOTSUPP before init_control; saved events are
re-raised on the page that covers them), EVTCHNOP_set_priority, and per port the
PENDING, MASKED and LINKED bits of the event word: set_pending drops the event
when the notify vCPU has no control block, else sets PENDING and, when neither
MASKED nor LINKED, links the port (LINKED, the port's "busy" state for
evtchn_allocate_port) and raises an upcall when the vCPU's queue was empty and
its READY bit was clear.

Not modelled: the control-block gfn and event-array gfns (always assumed to map;
Xen's -EINVAL/-ENOMEM from map_guest_page never happen here), the 16 priority
queues and their order (one queue per vCPU; READY is one bit), BUSY, the LINK
field, and the guest's consumption of a queue other than as the trace's `clear`
(the guest clears PENDING and LINKED of a word) and `ack` (clears READY and
evtchn_upcall_pending). New event-array pages are taken as zeroed by the guest.
"""

from __future__ import annotations

from .xen_state import (
    EACCES,
    EINVAL,
    ENOENT,
    ENOSPC,
    ENOSYS,
    EOPNOTSUPP,
    EVTCHN_2L_NR_CHANNELS,
    Domain,
)

EVTCHN_FIFO_LINK_BITS = 17
EVTCHN_FIFO_PRIORITY_DEFAULT = 7
EVTCHN_FIFO_PRIORITY_MIN = 15
EVENT_WORDS_PER_PAGE = 4096 // 4
MAX_EVENT_ARRAY_PAGES = (1 << EVTCHN_FIFO_LINK_BITS) // EVENT_WORDS_PER_PAGE  # 128
# sizeof(evtchn_fifo_control_block_t): ready, _rsvd, head[16], all uint32_t.
SIZEOF_CONTROL_BLOCK = 4 + 4 + 16 * 4
PAGE_SIZE = 4096


def has_word(d: Domain, port: int) -> bool:
    """evtchn_fifo_word_from_port(d, port) != NULL."""
    return port < d.fifo_pages * EVENT_WORDS_PER_PAGE


def fifo_set_pending(d: Domain, vcpu: int, port: int) -> bool:
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
        return d.vcpu_mark_events_pending(vcpu)
    return False


def fifo_clear_pending(d: Domain, port: int) -> None:
    """evtchn_fifo_clear_pending: just the PENDING bit (the guest unlinks)."""
    if has_word(d, port):
        d.fifo_pending.discard(port)


def fifo_unmask(d: Domain, port: int) -> bool:
    """evtchn_fifo_unmask: clear MASKED; relink if PENDING."""
    if not has_word(d, port):
        return False
    d.fifo_masked.discard(port)
    if port in d.fifo_pending:
        return fifo_set_pending(d, d.evtchn_from_port(port).notify_vcpu_id, port)
    return False


def evtchn_fifo_destroy(d: Domain) -> None:
    """evtchn_fifo_destroy + evtchn_2l_init (after EVTCHNOP_reset): back to 2-level."""
    d.evtchn_fifo = False
    d.fifo_control.clear()
    d.fifo_pages = 0
    d.fifo_pending.clear()
    d.fifo_masked.clear()
    d.fifo_linked.clear()
    d.fifo_ready.clear()
    for ch in d.chans.values():
        ch.fifo_saved_pending = False


def init_control(d: Domain, vcpu: int, offset: int) -> tuple[int, dict[str, int] | None]:
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
        d.fifo_used = True
    elif vcpu in d.fifo_control:  # map_control_block: one per vCPU
        return -EINVAL, None
    d.fifo_control.add(vcpu)
    return 0, {"link_bits": EVTCHN_FIFO_LINK_BITS}


def expand_array(d: Domain) -> int:
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
            fifo_set_pending(d, ch.notify_vcpu_id, port)
    return 0


def set_priority(d: Domain, port: int, priority: int) -> int:
    """EVTCHNOP_set_priority -> evtchn_port_set_priority."""
    if not d.port_is_valid(port):
        return -EINVAL
    if not d.evtchn_fifo:
        return -ENOSYS
    if not d.evtchn_usable(port):
        return -EACCES
    if priority > EVTCHN_FIFO_PRIORITY_MIN:
        return -EINVAL
    d.evtchn_from_port(port).priority = priority
    return 0
