"""Xen's per-domain event-channel port table, as a state machine.

This mirrors xen/common/event_channel.c of Xen 4.17 (Arm). Methods carry the
names of the Xen functions they mirror and return Xen's return codes (0 or a
negative errno), so that a reader can hold this file next to the C. As in Xen,
the ABI's bit operations are the domain's port operations, `evtchn_port_ops`
(struct evtchn_port_ops): event_2l.py's (every domain's from evtchn_init until it
asks for FIFO) or fifo.py's; the shared records and constants are in
evtchn_common.py.

What is modelled, and why:
  * the port table grows by buckets of EVTCHNS_PER_BUCKET ports
    (evtchn_allocate_port), so `port_is_valid` is true up to the end of the
    highest allocated bucket, exactly as in Xen (it decides -EINVAL vs "closed"
    for EVTCHNOP_status at run time);
  * port 0 is allocated and marked ECS_RESERVED by `evtchn_init`;
  * a port is allocatable when it is <= max_evtchn_port and < max_evtchns(d)
    (-ENOSPC), and FREE (-EBUSY otherwise);
  * the 2-level bits (shared_info.evtchn_pending / evtchn_mask, the per-vCPU
    selector evtchn_pending_sel and evtchn_upcall_pending) and the FIFO words
    are fields of Domain, which event_2l.py and fifo.py change.

XSM: the dummy policy and SILO (Debian's default) for alloc_unbound and
bind_interdomain; during boot `current` is the idle domain, which is privileged,
so boot-time calls always pass. Not modelled: -ENOMEM (Xen's heap), FLASK, PIRQs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .event_2l import EVTCHN_PORT_OPS_2L, evtchn_2l_init, evtchn_2l_unmask
from .evtchn_common import (
    EACCES,
    ECS_FREE,
    ECS_INTERDOMAIN,
    ECS_IPI,
    ECS_RESERVED,
    ECS_UNBOUND,
    ECS_VIRQ,
    EEXIST,
    ENOENT,
    ENOSYS,
    EPERM,
    ESRCH,
    EVTCHN_2L_NR_CHANNELS,
    PAGE_SIZE,
    STATE_NAMES,
    Evtchn,
    EvtchnPortOps,
)

# (re-exported: boot.py takes them from here)
from .evtchn_common import EBUSY as EBUSY
from .evtchn_common import EINVAL as EINVAL
from .evtchn_common import ENOSPC as ENOSPC
from .evtchn_common import ERRNO_NAMES as ERRNO_NAMES
from .fifo import EVTCHN_FIFO_NR_CHANNELS, evtchn_fifo_destroy

# struct evtchn is __attribute__((aligned(64))) and 52 bytes in a release arm64
# build, so sizeof == 64 and PAGE_SIZE / next_power_of_2(64) == 64 ports a bucket.
SIZEOF_STRUCT_EVTCHN = 64
EVTCHNS_PER_BUCKET = PAGE_SIZE // SIZEOF_STRUCT_EVTCHN
INT_MAX = 0x7FFFFFFF
DOMID_SELF = 0x7FF0
DOMID_IDLE = 0x7FFF  # `current` while Xen boots

# max_evtchn_port values the domain builders pass to domain_create
# (xen/arch/arm/domain_build.c in 4.17: create_domUs 1023, create_dom0 -1).
DOMU_MAX_EVTCHN_PORT = 1023
DOM0_MAX_EVTCHN_PORT = 0xFFFFFFFF  # (uint32_t)-1, clamped to INT_MAX by evtchn_init


@dataclass(frozen=True, slots=True)
class PortView:
    """What a guest could learn about one port (status plus its 2-level bits)."""

    port: int
    status: str
    remote_dom: int | None
    remote_port: int | None
    static: bool
    pending: bool
    masked: bool
    node: str | None


@dataclass(slots=True)
class Domain:
    """The event-channel part of struct domain."""

    domid: int
    name: str
    max_vcpus: int = 1
    max_evtchn_port: int = 0
    valid_evtchns: int = 0
    active_evtchns: int = 0
    is_dying: bool = False
    evtchn_fifo: bool = False  # d->evtchn_fifo != NULL: FIFO's control blocks exist
    evtchn_port_ops: EvtchnPortOps = EVTCHN_PORT_OPS_2L  # the current ABI's
    chans: dict[int, Evtchn] = field(default_factory=dict)
    # 2-level ABI state in shared_info / vcpu_info.
    evtchn_pending: set[int] = field(default_factory=set)
    evtchn_mask: set[int] = field(default_factory=set)
    evtchn_pending_sel: dict[int, int] = field(default_factory=dict)
    evtchn_upcall_pending: dict[int, bool] = field(default_factory=dict)
    # v->virq_to_evtchn[virq], keyed (vcpu, virq); global VIRQs live on vCPU 0.
    virq_to_evtchn: dict[tuple[int, int], int] = field(default_factory=dict)
    # FIFO ABI (fifo.py): vCPUs with a control block, event-array pages, word bits.
    fifo_control: set[int] = field(default_factory=set)
    fifo_used: bool = False  # not Xen's: init_control ever succeeded (stale 2L bits)
    fifo_pages: int = 0
    fifo_pending: set[int] = field(default_factory=set)
    fifo_masked: set[int] = field(default_factory=set)
    fifo_linked: dict[int, int] = field(default_factory=dict)  # port -> queue vCPU
    fifo_ready: dict[int, bool] = field(default_factory=dict)
    # Not Xen's: the vCPUs an upcall was raised on (0 -> 1 of upcall_pending),
    # in order, for `run` to report; drained by its reader.
    upcalls: list[int] = field(default_factory=list)
    # Not Xen's: every port below this is known not to be FREE (speeds up
    # get_free_port without changing its answer).
    _free_hint: int = 0

    # -- the port table -----------------------------------------------------
    def max_evtchns(self) -> int:
        """max_evtchns(d): FIFO's 2^17 once FIFO is on, else the 2-level limit."""
        return EVTCHN_FIFO_NR_CHANNELS if self.evtchn_fifo else EVTCHN_2L_NR_CHANNELS

    def port_is_valid(self, port: int) -> bool:
        """port_is_valid(d, p): below the end of the highest allocated bucket."""
        return 0 <= port < self.valid_evtchns

    def evtchn_from_port(self, port: int) -> Evtchn:
        ch = self.chans.get(port)
        if ch is None:
            ch = Evtchn(port)
            self.chans[port] = ch
        return ch

    def state_of(self, port: int) -> int:
        # (dict.get: a read that hands out no struct, so `run`'s tracked port table
        # need not note it; get_free_port reads hundreds of ports a call)
        ch = dict.get(self.chans, port)
        return ECS_FREE if ch is None else ch.state

    def evtchn_allocate_port(self, port: int) -> int:
        """evtchn_allocate_port(d, port): -ENOSPC above the limits, -EBUSY if taken,
        else allocate every bucket up to the one holding `port`."""
        if port > self.max_evtchn_port or port >= self.max_evtchns():
            return -ENOSPC
        if self.port_is_valid(port):
            if self.state_of(port) != ECS_FREE or self.evtchn_is_busy(port):
                return -EBUSY
        else:
            alloc_port = self.valid_evtchns
            while True:
                alloc_port += EVTCHNS_PER_BUCKET
                self.valid_evtchns = alloc_port
                if port < alloc_port:
                    break
        self.active_evtchns += 1
        return 0

    def get_free_port(self) -> int:
        """get_free_port(d): the lowest port evtchn_allocate_port accepts."""
        if self.is_dying:
            return -EINVAL
        port = self._free_hint
        while port <= self.max_evtchn_port:
            rc = self.evtchn_allocate_port(port)
            if rc == 0:
                # every port below is in use; `port` itself may stay FREE if the
                # caller fails after this (check_free_port), so it is not skipped
                self._free_hint = port
                return port
            if rc != -EBUSY:
                return rc
            port += 1
        return -ENOSPC

    def evtchn_get_port(self, port: int) -> int:
        """evtchn_get_port(d, port): port 0 means "any free port"."""
        rc = self.evtchn_allocate_port(port) if port != 0 else self.get_free_port()
        return rc if rc < 0 else (port if port != 0 else rc)

    def check_free_port(self, port: int) -> None:
        """check_free_port(d, port): undo the active count of a port left FREE."""
        if self.port_is_valid(port) and self.state_of(port) == ECS_FREE:
            self.active_evtchns -= 1

    def evtchn_free(self, port: int) -> None:
        """evtchn_free(d, chn): clear pending, back to FREE on vCPU 0."""
        self.evtchn_port_clear_pending(port)
        ch = self.chans.get(port)
        if ch is not None:
            ch.state = ECS_FREE
            ch.notify_vcpu_id = 0
            ch.xen_consumer = 0
            ch.static_node = None
        self.active_evtchns -= 1
        self._free_hint = min(self._free_hint, port)

    def evtchn_init(self, max_port: int) -> int:
        """evtchn_init(d, max_port): 2-level ABI, first bucket, port 0 RESERVED."""
        evtchn_2l_init(self)
        self.evtchn_fifo = False
        self.max_evtchn_port = min(max_port & 0xFFFFFFFF, INT_MAX)
        self.valid_evtchns = EVTCHNS_PER_BUCKET
        if self.get_free_port() != 0:
            return -EINVAL
        self.evtchn_from_port(0).state = ECS_RESERVED
        self.active_evtchns = 0
        # vCPU 0 always exists (notify_vcpu_id defaults to 0); other vCPUs' words
        # are created when first touched (a huge `cpus` must not cost memory here).
        self.evtchn_pending_sel.setdefault(0, 0)
        self.evtchn_upcall_pending.setdefault(0, False)
        return 0

    # -- the ABI's port operations (xen/include/xen/event.h) ---------------------
    def evtchn_usable(self, port: int) -> bool:
        ch = dict.get(self.chans, port)  # (a read only, as in state_of)
        return ch is not None and ch.xen_consumer == 0 and ch.state > ECS_RESERVED

    def evtchn_port_set_pending(self, vcpu: int, port: int) -> bool:
        """evtchn_port_set_pending: only usable channels get the bit."""
        if self.evtchn_usable(port):
            return self.evtchn_port_ops.set_pending(self, vcpu, port)
        return False

    def evtchn_port_clear_pending(self, port: int) -> None:
        if self.evtchn_usable(port):
            self.evtchn_port_ops.clear_pending(self, port)

    def evtchn_port_unmask(self, port: int) -> bool:
        """evtchn_port_unmask: only usable channels; the ABI's unmask."""
        if not self.evtchn_usable(port):
            return False
        return self.evtchn_port_ops.unmask(self, port)

    def evtchn_2l_unmask(self, port: int) -> bool:
        """event_2l.evtchn_2l_unmask on this domain, whatever its ABI and with no
        usable check (tests/test_boot_xen_state.py calls it)."""
        return evtchn_2l_unmask(self, port)

    def evtchn_is_busy(self, port: int) -> bool:
        """evtchn_is_busy: 2-level has no hook; FIFO's is the LINKED bit of the word."""
        is_busy = self.evtchn_port_ops.is_busy
        return is_busy is not None and is_busy(self, port)

    def evtchn_port_set_priority(self, port: int, priority: int) -> int:
        """evtchn_port_set_priority: -ENOSYS without the hook (2-level), -EACCES for
        a channel not usable."""
        set_priority = self.evtchn_port_ops.set_priority
        if set_priority is None:
            return -ENOSYS
        if not self.evtchn_usable(port):
            return -EACCES
        return set_priority(self, port, priority)

    # -- views ---------------------------------------------------------------
    def used_ports(self) -> list[PortView]:
        """Every port a guest would see as not closed, in increasing order.

        Port 0 is ECS_RESERVED, which EVTCHNOP_status reports as closed, so it is
        not listed.
        """
        out: list[PortView] = []
        for port in sorted(self.chans):
            ch = self.chans[port]
            if ch.state <= ECS_RESERVED:
                continue
            if ch.state == ECS_UNBOUND:
                rdom: int | None = ch.remote_domid
                rport: int | None = None
            elif ch.state == ECS_INTERDOMAIN:
                rdom, rport = ch.remote_dom, ch.remote_port
            else:
                rdom = rport = None
            out.append(PortView(port, STATE_NAMES[ch.state], rdom, rport,
                                ch.static_node is not None, port in self.evtchn_pending,
                                port in self.evtchn_mask, ch.static_node))
        return out


class XenState:
    """All domains' event-channel state, and the hypercall-level primitives.

    `control` holds the privileged (control) domains; while `booting`, the idle
    domain that runs the boot code is privileged too (xsm_set_system_active clears
    that just before the domains are unpaused). `xsm` is the policy: "silo"
    (Debian's 4.17 build defaults to SILO, CONFIG_XSM_SILO_DEFAULT=y, observed in
    /boot/xen-4.17-arm64.config by the conformance runs) or "dummy" (upstream's
    default).
    """

    __slots__ = ("booting", "control", "domains", "xsm")

    def __init__(self, xsm: str = "silo") -> None:
        self.domains: dict[int, Domain] = {}
        self.xsm = xsm
        self.control: set[int] = set()
        self.booting = True

    # -- XSM (xen/include/xsm/dummy.h, xen/xsm/silo.c) -----------------------------
    def is_control_domain(self, domid: int) -> bool:
        return domid in self.control or (domid == DOMID_IDLE and self.booting)

    def _silo_mode_dom_check(self, current: int, ldom: int, rdom: int) -> bool:
        return (self.is_control_domain(current) or self.is_control_domain(ldom)
                or self.is_control_domain(rdom) or ldom == rdom)

    def xsm_evtchn_unbound(self, current: int, d1: int, id2: int) -> int:
        """XSM_TARGET under the dummy policy (the caller acts on itself, or is
        privileged); SILO first requires a control domain on either side, or d1 == d2."""
        if self.xsm == "silo":
            if id2 not in self.domains:
                return -ESRCH
            if not self._silo_mode_dom_check(current, d1, id2):
                return -EPERM
        return 0 if current == d1 or self.is_control_domain(current) else -EPERM

    def xsm_evtchn_interdomain(self, current: int, ld: int, rd: int) -> int:
        """XSM_HOOK under the dummy policy (always 0); SILO as for unbound."""
        if self.xsm == "silo" and not self._silo_mode_dom_check(current, ld, rd):
            return -EPERM
        return 0

    def domain_create(self, domid: int, name: str, max_evtchn_port: int,
                      max_vcpus: int = 1) -> tuple[int, Domain | None]:
        """The evtchn part of domain_create(): evtchn_init with the config's limit."""
        d = Domain(domid, name, max_vcpus=max(max_vcpus, 1))
        rc = d.evtchn_init(max_evtchn_port)
        if rc:
            return rc, None
        self.domains[domid] = d
        return 0, d

    def get_domain_by_id(self, domid: int) -> Domain | None:
        return self.domains.get(domid)

    def evtchn_alloc_unbound(self, dom: int, remote_dom: int, port: int,
                             current: int = DOMID_IDLE,
                             node: str | None = None) -> tuple[int, int]:
        """evtchn_alloc_unbound(alloc, port) -> (rc, alloc.port).

        `current` is the calling domain (DOMID_SELF in `remote_dom` resolves to
        it); boot-time callers run as the idle domain, privileged during boot.
        """
        d = self.domains.get(dom)
        if d is None:
            return -ESRCH, 0
        rc = d.evtchn_get_port(port)
        if rc < 0:
            return rc, 0
        port = rc
        rdom = current if remote_dom == DOMID_SELF else remote_dom
        rc = self.xsm_evtchn_unbound(current, dom, rdom)
        if rc:
            d.check_free_port(port)
            return rc, 0
        ch = d.evtchn_from_port(port)
        ch.state = ECS_UNBOUND
        ch.remote_domid = rdom
        ch.static_node = node
        return 0, port

    def evtchn_bind_interdomain(self, ld: int, remote_dom: int, remote_port: int,
                                lport: int, node: str | None = None,
                                current: int = DOMID_IDLE) -> tuple[int, int]:
        """evtchn_bind_interdomain(bind, ld, lport) -> (rc, bind.local_port).

        Order of checks as in Xen: remote domain (-ESRCH), then the local port
        (evtchn_get_port: -ENOSPC/-EBUSY), then the remote port (-EINVAL unless it
        is valid, UNBOUND and waiting for `ld`). On success the local port is set
        pending ("we may have lost notifications").
        """
        rd = self.domains.get(remote_dom)
        if rd is None:
            return -ESRCH, 0
        d = self.domains[ld]
        rc = d.evtchn_get_port(lport)
        if rc < 0:
            return rc, 0
        lport = rc
        if not rd.port_is_valid(remote_port):
            d.check_free_port(lport)
            return -EINVAL, 0
        rchn = rd.chans.get(remote_port)
        if rchn is None or rchn.state != ECS_UNBOUND or rchn.remote_domid != ld:
            d.check_free_port(lport)
            return -EINVAL, 0
        rc = self.xsm_evtchn_interdomain(current, ld, remote_dom)
        if rc:
            d.check_free_port(lport)
            return rc, 0
        lchn = d.evtchn_from_port(lport)
        lchn.remote_dom, lchn.remote_port = remote_dom, remote_port
        lchn.state = ECS_INTERDOMAIN
        lchn.static_node = node
        rchn.remote_dom, rchn.remote_port = ld, lport
        rchn.state = ECS_INTERDOMAIN
        d.evtchn_port_set_pending(lchn.notify_vcpu_id, lport)
        return 0, lport

    # -- run time: the guest-facing hypercalls (do_event_channel_op) -------------
    # Each takes the calling domain `current` and the guest's raw arguments, and
    # returns (rc, output): output is what Xen copies back on success (None when
    # nothing is, or on error: do_event_channel_op copies back only when rc == 0).

    def rcu_lock_domain_by_any_id(self, current: int, dom: int) -> Domain | None:
        """DOMID_SELF names the caller; any other id a live domain or nothing."""
        return self.domains.get(current if dom == DOMID_SELF else dom)

    def xsm_target(self, current: int, target: int) -> int:
        """XSM_TARGET (dummy.h xsm_default_action): self, or a control domain."""
        return 0 if current == target or self.is_control_domain(current) else -EPERM

    def hc_alloc_unbound(self, current: int, dom: int, remote_dom: int
                         ) -> tuple[int, int | None]:
        """EVTCHNOP_alloc_unbound -> evtchn_alloc_unbound(alloc, 0)."""
        d = self.rcu_lock_domain_by_any_id(current, dom)
        if d is None:
            return -ESRCH, None
        rc, port = self.evtchn_alloc_unbound(d.domid, remote_dom, 0, current=current)
        return (rc, None) if rc else (0, port)

    def hc_bind_interdomain(self, current: int, remote_dom: int, remote_port: int
                            ) -> tuple[int, int | None]:
        """EVTCHNOP_bind_interdomain -> evtchn_bind_interdomain(bind, current, 0)."""
        rd = self.rcu_lock_domain_by_any_id(current, remote_dom)
        if rd is None:
            return -ESRCH, None
        rc, port = self.evtchn_bind_interdomain(current, rd.domid, remote_port, 0,
                                                current=current)
        return (rc, None) if rc else (0, port)

    def hc_bind_virq(self, current: int, virq: int, vcpu: int) -> tuple[int, int | None]:
        """EVTCHNOP_bind_virq -> evtchn_bind_virq(bind, 0)."""
        d = self.domains[current]
        if virq >= NR_VIRQS:  # also a u32 >= 2^31, negative as Xen's int
            return -EINVAL, None
        if virq_is_global(virq) and vcpu != 0:
            return -EINVAL, None
        if vcpu >= d.max_vcpus:  # domain_vcpu(d, vcpu) == NULL
            return -ENOENT, None
        if d.virq_to_evtchn.get((vcpu, virq), 0):
            return -EEXIST, None
        port = d.get_free_port()
        if port < 0:
            return port, None
        ch = d.evtchn_from_port(port)
        ch.state, ch.notify_vcpu_id, ch.virq = ECS_VIRQ, vcpu, virq
        d.virq_to_evtchn[(vcpu, virq)] = port
        return 0, port

    def hc_bind_ipi(self, current: int, vcpu: int) -> tuple[int, int | None]:
        """EVTCHNOP_bind_ipi -> evtchn_bind_ipi: vCPU check, then the lowest free port."""
        d = self.domains[current]
        if vcpu >= d.max_vcpus:
            return -ENOENT, None
        port = d.get_free_port()
        if port < 0:
            return port, None
        ch = d.evtchn_from_port(port)
        ch.state, ch.notify_vcpu_id = ECS_IPI, vcpu
        return 0, port

    def evtchn_close(self, d1: Domain, port1: int, guest: bool) -> int:
        """evtchn_close(d1, port1, guest): free the port; an interdomain peer is left
        ECS_UNBOUND waiting for d1 (its pending, mask and vCPU untouched)."""
        if not d1.port_is_valid(port1):
            return -EINVAL
        ch = d1.chans.get(port1)
        if ch is None or ch.state in (ECS_FREE, ECS_RESERVED):
            return -EINVAL
        if ch.xen_consumer and guest:
            return -EINVAL
        if ch.state == ECS_VIRQ:
            v = 0 if virq_is_global(ch.virq) else ch.notify_vcpu_id
            d1.virq_to_evtchn.pop((v, ch.virq), None)
        elif ch.state == ECS_INTERDOMAIN:
            d2 = self.domains[ch.remote_dom]
            chn2 = d2.chans[ch.remote_port]
            d1.evtchn_free(port1)
            chn2.state = ECS_UNBOUND
            chn2.remote_domid = d1.domid
            return 0
        d1.evtchn_free(port1)
        return 0

    def hc_close(self, current: int, port: int) -> tuple[int, None]:
        """EVTCHNOP_close -> evtchn_close(current, port, guest=1)."""
        return self.evtchn_close(self.domains[current], port, True), None

    def hc_send(self, current: int, port: int) -> tuple[int, None]:
        """EVTCHNOP_send -> evtchn_send: interdomain raises the peer's port on the
        peer's notify vCPU, IPI raises its own port, unbound drops silently."""
        ld = self.domains[current]
        if not ld.port_is_valid(port):
            return -EINVAL, None
        ch = ld.chans.get(port)
        if ch is None:
            return -EINVAL, None
        if ch.xen_consumer:
            return -EINVAL, None
        if ch.state == ECS_INTERDOMAIN:
            rd = self.domains[ch.remote_dom]
            rch = rd.chans[ch.remote_port]
            rd.evtchn_port_set_pending(rch.notify_vcpu_id, ch.remote_port)
        elif ch.state == ECS_IPI:
            ld.evtchn_port_set_pending(ch.notify_vcpu_id, port)
        elif ch.state != ECS_UNBOUND:
            return -EINVAL, None
        return 0, None

    def hc_status(self, current: int, dom: int, port: int
                  ) -> tuple[int, dict[str, int | str] | None]:
        """EVTCHNOP_status -> evtchn_status: -ESRCH, then -EINVAL (port range), then
        XSM_TARGET (-EPERM), so the range of another domain's table is observable."""
        d = self.rcu_lock_domain_by_any_id(current, dom)
        if d is None:
            return -ESRCH, None
        if not d.port_is_valid(port):
            return -EINVAL, None
        ch = d.chans.get(port) or Evtchn(port)
        if ch.xen_consumer:
            return -EACCES, None  # 4.15-4.18 (f60ab5337f); unreachable without Xen users
        rc = self.xsm_target(current, d.domid)
        if rc:
            return rc, None
        out: dict[str, int | str] = {"status": "closed" if ch.state <= ECS_RESERVED
                                     else STATE_NAMES[ch.state]}
        if ch.state == ECS_UNBOUND:
            out["dom"] = ch.remote_domid
        elif ch.state == ECS_INTERDOMAIN:
            out["dom"], out["port"] = ch.remote_dom, ch.remote_port
        elif ch.state == ECS_VIRQ:
            out["virq"] = ch.virq
        out["vcpu"] = ch.notify_vcpu_id
        return 0, out

    def hc_bind_vcpu(self, current: int, port: int, vcpu: int) -> tuple[int, None]:
        """EVTCHNOP_bind_vcpu -> evtchn_bind_vcpu: -ENOENT (vCPU) before -EINVAL."""
        d = self.domains[current]
        if vcpu >= d.max_vcpus:
            return -ENOENT, None
        if not d.port_is_valid(port):
            return -EINVAL, None
        ch = d.chans.get(port)
        if ch is None or ch.xen_consumer:
            return -EINVAL, None
        if (ch.state == ECS_VIRQ and virq_is_global(ch.virq)) or ch.state in (
                ECS_UNBOUND, ECS_INTERDOMAIN):
            ch.notify_vcpu_id = vcpu
            return 0, None
        return -EINVAL, None

    def hc_unmask(self, current: int, port: int) -> tuple[int, None]:
        """EVTCHNOP_unmask -> evtchn_unmask: -EINVAL only for a port out of range."""
        d = self.domains[current]
        if not d.port_is_valid(port):
            return -EINVAL, None
        d.evtchn_port_unmask(port)
        return 0, None

    def hc_reset(self, current: int, dom: int, resuming: bool = False) -> tuple[int, None]:
        """EVTCHNOP_reset / reset_cont -> xsm_evtchn_reset (XSM_TARGET), evtchn_reset.

        Nothing pauses a domain in this model (controller_pause_count is 0), so only
        a domain's own reset gets past the -EINVAL check; the continuation always
        completes within the call, so reset_cont finds no reset under way (-EBUSY).
        """
        d = self.rcu_lock_domain_by_any_id(current, dom)
        if d is None:
            return -ESRCH, None
        rc = self.xsm_target(current, d.domid)
        if rc:
            return rc, None
        if d.domid != current:
            return -EINVAL, None
        if resuming:
            return -EBUSY, None
        port = 1
        while d.port_is_valid(port) and d.active_evtchns > 0:
            self.evtchn_close(d, port, True)
            port += 1
        if d.evtchn_fifo:  # back to the 2-level ABI
            evtchn_fifo_destroy(d)
            evtchn_2l_init(d)
        return 0, None

    def domain_destroy(self, domid: int) -> int:
        """domain_kill -> evtchn_destroy (close every port from the top, guest=0),
        then the last reference goes: the domid names nothing any more."""
        d = self.domains.get(domid)
        if d is None:
            return -ESRCH
        d.is_dying = True
        for port in range(d.valid_evtchns - 1, 0, -1):
            self.evtchn_close(d, port, False)
        del self.domains[domid]
        self.control.discard(domid)
        return 0


# VIRQs (public/xen.h); on Arm every VIRQ_ARCH_* is global (arch_virq_is_global).
NR_VIRQS = 24
VIRQ_TIMER, VIRQ_DEBUG, VIRQ_XENOPROF, VIRQ_XENPMU = 0, 1, 7, 13


def virq_is_global(virq: int) -> bool:
    """virq_is_global: TIMER, DEBUG, XENOPROF and XENPMU are per-vCPU."""
    return virq not in (VIRQ_TIMER, VIRQ_DEBUG, VIRQ_XENOPROF, VIRQ_XENPMU)


def evtchn_set_priority(d: Domain, port: int, priority: int) -> int:
    """EVTCHNOP_set_priority -> evtchn_set_priority (d is current->domain): -EINVAL
    for a port out of range, then evtchn_port_set_priority."""
    if not d.port_is_valid(port):
        return -EINVAL
    return d.evtchn_port_set_priority(port, priority)
