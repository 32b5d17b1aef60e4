"""Xen's per-domain event-channel port table, as a state machine.

This mirrors xen/common/event_channel.c and xen/common/event_2l.c of Xen 4.17
(Arm, 2-level ABI, which every domain uses until it asks for FIFO). Methods carry
the names of the Xen functions they mirror and return Xen's return codes
(0 or a negative errno), so that a reader can hold this file next to the C.

What is modelled, and why:
  * the port table grows by buckets of EVTCHNS_PER_BUCKET ports
    (evtchn_allocate_port), so `port_is_valid` is true up to the end of the
    highest allocated bucket, exactly as in Xen (it decides -EINVAL vs "closed"
    for EVTCHNOP_status at run time);
  * port 0 is allocated and marked ECS_RESERVED by `evtchn_init`;
  * a port is allocatable when it is <= max_evtchn_port and < max_evtchns(d)
    (-ENOSPC), and FREE (-EBUSY otherwise);
  * the 2-level bits: shared_info.evtchn_pending / evtchn_mask, the per-vCPU
    selector evtchn_pending_sel and evtchn_upcall_pending.

XSM: the dummy policy and SILO (Debian's default) for alloc_unbound and
bind_interdomain; during boot `current` is the idle domain, which is privileged,
so boot-time calls always pass. Not modelled: -ENOMEM (Xen's heap), FLASK, PIRQs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# errno values Xen returns (xen/include/public/errno.h).
EPERM = 1
ENOENT = 2
ESRCH = 3
ENOMEM = 12
EBUSY = 16
EINVAL = 22
ENOSPC = 28

ERRNO_NAMES = {EPERM: "EPERM", ENOENT: "ENOENT", ESRCH: "ESRCH", ENOMEM: "ENOMEM",
               EBUSY: "EBUSY", EINVAL: "EINVAL", ENOSPC: "ENOSPC"}

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

# Arm: xen_ulong_t is 64 bits for 32- and 64-bit guests and CONFIG_COMPAT is
# x86-only, so BITS_PER_EVTCHN_WORD is 64 and the 2-level ABI has 64 * 64 ports.
BITS_PER_EVTCHN_WORD = 64
EVTCHN_2L_NR_CHANNELS = BITS_PER_EVTCHN_WORD * BITS_PER_EVTCHN_WORD  # 4096
EVTCHN_FIFO_NR_CHANNELS = 1 << 17
# struct evtchn is __attribute__((aligned(64))) and 52 bytes in a release arm64
# build, so sizeof == 64 and PAGE_SIZE / next_power_of_2(64) == 64 ports a bucket.
PAGE_SIZE = 4096
SIZEOF_STRUCT_EVTCHN = 64
EVTCHNS_PER_BUCKET = PAGE_SIZE // SIZEOF_STRUCT_EVTCHN
INT_MAX = 0x7FFFFFFF
DOMID_SELF = 0x7FF0
DOMID_IDLE = 0x7FFF  # `current` while Xen boots

# XSM policies: Debian's 4.17 build defaults to SILO (CONFIG_XSM_SILO_DEFAULT=y,
# observed in /boot/xen-4.17-arm64.config by the conformance runs); "dummy" is
# upstream's default.
XSM_POLICIES = ("silo", "dummy")

# max_evtchn_port values the domain builders pass to domain_create
# (xen/arch/arm/domain_build.c in 4.17: create_domUs 1023, create_dom0 -1).
DOMU_MAX_EVTCHN_PORT = 1023
DOM0_MAX_EVTCHN_PORT = 0xFFFFFFFF  # (uint32_t)-1, clamped to INT_MAX by evtchn_init


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
    static_node: str | None = None  # not Xen's: the DT node that made the port


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
    evtchn_fifo: bool = False
    chans: dict[int, Evtchn] = field(default_factory=dict)
    # 2-level ABI state in shared_info / vcpu_info.
    evtchn_pending: set[int] = field(default_factory=set)
    evtchn_mask: set[int] = field(default_factory=set)
    evtchn_pending_sel: dict[int, int] = field(default_factory=dict)
    evtchn_upcall_pending: dict[int, bool] = field(default_factory=dict)
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
        ch = self.chans.get(port)
        return ECS_FREE if ch is None else ch.state

    def evtchn_is_busy(self, port: int) -> bool:
        """The 2-level ABI has no is_busy hook (FIFO's LINKED bit is not modelled)."""
        return False

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

    # -- 2-level ABI (xen/common/event_2l.c) ---------------------------------
    def evtchn_usable(self, port: int) -> bool:
        ch = self.chans.get(port)
        return ch is not None and ch.xen_consumer == 0 and ch.state > ECS_RESERVED

    def vcpu_mark_events_pending(self, vcpu: int) -> bool:
        """Arm: set evtchn_upcall_pending; the PPI is injected only on 0 -> 1."""
        already = self.evtchn_upcall_pending.get(vcpu, False)
        self.evtchn_upcall_pending[vcpu] = True
        return not already

    def evtchn_2l_set_pending(self, vcpu: int, port: int) -> bool:
        """evtchn_2l_set_pending: returns whether an upcall was raised."""
        if port in self.evtchn_pending:
            return False
        self.evtchn_pending.add(port)
        if port not in self.evtchn_mask:
            word = port // BITS_PER_EVTCHN_WORD
            sel = self.evtchn_pending_sel.get(vcpu, 0)
            if not sel >> word & 1:
                self.evtchn_pending_sel[vcpu] = sel | 1 << word
                return self.vcpu_mark_events_pending(vcpu)
        return False

    def evtchn_2l_clear_pending(self, port: int) -> None:
        self.evtchn_pending.discard(port)

    def evtchn_port_clear_pending(self, port: int) -> None:
        if self.evtchn_usable(port):
            self.evtchn_2l_clear_pending(port)

    def evtchn_2l_unmask(self, port: int) -> bool:
        """evtchn_2l_unmask: re-raise only if the mask bit was set and it is pending."""
        ch = self.chans.get(port)
        vcpu = ch.notify_vcpu_id if ch is not None else 0
        if port in self.evtchn_mask:
            self.evtchn_mask.discard(port)
            if port in self.evtchn_pending:
                word = port // BITS_PER_EVTCHN_WORD
                sel = self.evtchn_pending_sel.get(vcpu, 0)
                if not sel >> word & 1:
                    self.evtchn_pending_sel[vcpu] = sel | 1 << word
                    return self.vcpu_mark_events_pending(vcpu)
        return False

    def evtchn_port_set_pending(self, vcpu: int, port: int) -> bool:
        """evtchn_port_set_pending: only usable channels get the bit."""
        if self.evtchn_usable(port):
            return self.evtchn_2l_set_pending(vcpu, port)
        return False

    def evtchn_is_pending(self, port: int) -> bool:
        return self.evtchn_usable(port) and port in self.evtchn_pending

    def evtchn_is_masked(self, port: int) -> bool:
        return not self.evtchn_usable(port) or port in self.evtchn_mask

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
    that just before the domains are unpaused).
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
