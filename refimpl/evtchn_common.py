"""What the event-channel core (xen_state.py) and both ABIs (event_2l.py, fifo.py)
share: Xen's errno values and channel states, the ABI constants, the port record
(struct evtchn), the port-operation table (struct evtchn_port_ops) and the part of
struct domain the ABIs reach (`EvtchnDomain`, which xen_state.Domain is).

It imports nothing of the model, so that the ABIs need not import xen_state.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

# errno values Xen returns (xen/include/public/errno.h).
EPERM = 1
ENOENT = 2
ESRCH = 3
ENOMEM = 12
EBUSY = 16
EINVAL = 22
EEXIST = 17
ENOSPC = 28
ENOSYS = 38
EACCES = 13
EOPNOTSUPP = 95
ENODATA = 61  # (the device-tree readers: dt_property_read_string)
EILSEQ = 84

ERRNO_NAMES = {EPERM: "EPERM", ENOENT: "ENOENT", ESRCH: "ESRCH", ENOMEM: "ENOMEM",
               EBUSY: "EBUSY", EINVAL: "EINVAL", ENOSPC: "ENOSPC", EEXIST: "EEXIST",
               ENOSYS: "ENOSYS", EACCES: "EACCES", EOPNOTSUPP: "EOPNOTSUPP"}

# Channel states (struct evtchn, xen/include/xen/sched.h).
ECS_FREE = 0
ECS_RESERVED = 1
ECS_UNBOUND = 2
ECS_INTERDOMAIN = 3
ECS_PIRQ = 4
ECS_VIRQ = 5
ECS_IPI = 6

STATE_NAMES = {ECS_FREE: "free", ECS_RESERVED: "reserved", ECS_UNBOUND: "unbound",
               ECS_INTERDOMAIN: "interdomain", ECS_PIRQ: "pirq", ECS_VIRQ: "virq",
               ECS_IPI: "ipi"}

PAGE_SIZE = 4096
# Arm: xen_ulong_t is 64 bits for 32- and 64-bit guests and CONFIG_COMPAT is
# x86-only, so BITS_PER_EVTCHN_WORD is 64 and the 2-level ABI has 64 * 64 ports.
BITS_PER_EVTCHN_WORD = 64
EVTCHN_2L_NR_CHANNELS = BITS_PER_EVTCHN_WORD * BITS_PER_EVTCHN_WORD  # 4096
EVTCHN_FIFO_PRIORITY_DEFAULT = 7  # public/event_channel.h; every new channel's


@dataclass(slots=True)
class Evtchn:
    """One slot of a domain's port table (the fields of struct evtchn we need)."""

    port: int
    state: int = ECS_FREE
    remote_domid: int = 0  # u.unbound.remote_domid
    remote_dom: int = 0  # u.interdomain.remote_dom (a domid here)
    remote_port: int = 0  # u.interdomain.remote_port
    notify_vcpu_id: int = 0
    xen_consumer: int = 0
    virq: int = 0  # u.virq
    priority: int = EVTCHN_FIFO_PRIORITY_DEFAULT  # FIFO priority
    fifo_saved_pending: bool = False  # evtchn->pending: FIFO event with no word yet
    static_node: str | None = None  # not Xen's: the DT node that made the port


class EvtchnDomain(Protocol):
    """The fields and helpers of struct domain (xen_state.Domain) the ABIs use."""

    max_vcpus: int
    valid_evtchns: int
    evtchn_fifo: bool
    evtchn_port_ops: EvtchnPortOps
    chans: dict[int, Evtchn]
    # 2-level ABI state in shared_info / vcpu_info.
    evtchn_pending: set[int]
    evtchn_mask: set[int]
    evtchn_pending_sel: dict[int, int]
    evtchn_upcall_pending: dict[int, bool]
    # FIFO ABI state (fifo.py).
    fifo_control: set[int]
    fifo_used: bool
    fifo_pages: int
    fifo_pending: set[int]
    fifo_masked: set[int]
    fifo_linked: dict[int, int]
    fifo_ready: dict[int, bool]
    upcalls: list[int]

    def port_is_valid(self, port: int) -> bool: ...

    def evtchn_from_port(self, port: int) -> Evtchn: ...


@dataclass(frozen=True, slots=True)
class EvtchnPortOps:
    """struct evtchn_port_ops (xen/include/xen/event.h): one ABI's port operations,
    on ports of the domain `d`; d.evtchn_port_ops is the domain's current ABI. The
    callers (xen_state.Domain.evtchn_port_*, as event.h's wrappers) check that the
    channel is usable; a hook an ABI lacks is None, as in Xen. (is_pending and
    is_masked serve Xen's SCHEDOP_poll and its 'e' debug key, neither modelled: no
    call of the model reads them; the run JSON reports the raw bits.)"""

    # (d, vcpu, port) -> whether an upcall was raised on vcpu
    set_pending: Callable[[EvtchnDomain, int, int], bool]
    clear_pending: Callable[[EvtchnDomain, int], None]
    # (d, port) -> whether an upcall was raised
    unmask: Callable[[EvtchnDomain, int], bool]
    is_pending: Callable[[EvtchnDomain, int], bool]
    is_masked: Callable[[EvtchnDomain, int], bool]
    is_busy: Callable[[EvtchnDomain, int], bool] | None = None
    # (d, port, priority) -> 0 or -errno
    set_priority: Callable[[EvtchnDomain, int, int], int] | None = None


def vcpu_mark_events_pending(d: EvtchnDomain, vcpu: int) -> bool:
    """Arm: set evtchn_upcall_pending; the PPI is injected only on 0 -> 1."""
    already = d.evtchn_upcall_pending.get(vcpu, False)
    d.evtchn_upcall_pending[vcpu] = True
    if not already:
        d.upcalls.append(vcpu)
    return not already
