"""The configuration Xen reads from a resolved device tree.

`Config.from_tree` makes one linear pass over the tree and records everything the
boot (boot.py) and the rules (check.py) need, read the way Xen reads it:

  * phandles as Xen's unflattener sets them (`phandle` or `linux,phandle`, the
    first non-zero one; `ibm,phandle` overrides; a node without one has 0), and
    `dt_find_node_by_phandle` returning the *first* node in FDT order;
  * compatible matching as `dt_device_is_compatible` does it: any string of the
    list, compared with strcasecmp;
  * boot modules as bootfdt.c's `process_multiboot_node` classifies them, which
    decides whether dom0 exists (`is_dom0less_mode`);
  * the domains `create_domUs` creates (every `/chosen` child compatible with
    `xen,domain`, in FDT order, domids 1, 2, ...) and the properties of theirs
    that matter to event channels;
  * every node that looks like an event-channel endpoint, in either dialect.

The tree is never walked again per endpoint: lookups are dicts keyed by node id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum
from sys import intern

from evtchn_spec.grammar.errors import Span
from evtchn_spec.grammar.tree import Node, Property, Tree

from .evtchn_common import EILSEQ, EINVAL, ENODATA
from .xen_state import DOM0_MAX_EVTCHN_PORT, DOMU_MAX_EVTCHN_PORT

COMPAT_V1 = "xen,evtchn-v1"
COMPAT_SEED = "xen,evtchn"
COMPAT_DOMAIN = "xen,domain"
DOM0_NAME = "dom0"

# 4.21+ `capabilities` bits (xen/include/public/bootfdt.h).
DOMAIN_CAPS_CONTROL = 1 << 0
DOMAIN_CAPS_HARDWARE = 1 << 1
DOMAIN_CAPS_XENSTORE = 1 << 2
DOMAIN_CAPS_MASK = DOMAIN_CAPS_CONTROL | DOMAIN_CAPS_HARDWARE | DOMAIN_CAPS_XENSTORE


class Dialect(Enum):
    XEN = "xen"
    SEED = "seed"


@dataclass(frozen=True, slots=True)
class XenProfile:
    """The behaviour of one Xen release, as far as the boot of event channels goes."""

    name: str
    version: tuple[int, int]

    @property
    def late_xenstore(self) -> bool:
        """4.21+: xenstore ports are allocated after all domUs (initialize_domU_xenstore),
        "legacy" is accepted, and a domU may carry `capabilities`."""
        return self.version >= (4, 21)

    @property
    def rc_in_panics(self) -> bool:
        """4.18+: "Could not set up domain %s (rc = %d)", "Error creating domain %s (rc =
        %ld)", "Could not set up DOM0 guest OS (rc = %d)" (4.17 printed no rc)."""
        return self.version >= (4, 18)

    @property
    def static_memory(self) -> bool:
        """CONFIG_STATIC_MEMORY: off in Debian's configuration (the packaged builds and
        the ones made from it), so CDF_staticmem is 0 and `direct-map` always panics,
        xen,static-mem or not."""
        return False

    @property
    def dom0_by_pd(self) -> bool:
        """4.21+: dom0's failure is printed with %pd: "Could not set up d0 guest OS"."""
        return self.version >= (4, 21)

    @property
    def legacy_no_port(self) -> bool:
        """4.21+: "legacy" asks for xenstore (need_xenstore) but sets no
        HVM_PARAM_STORE_PFN (DOM0LESS_ENHANCED_LEGACY lacks DOM0LESS_XENSTORE), so
        initialize_domU_xenstore skips the domain: no xenstore channel at boot."""
        return self.version >= (4, 21)

    @property
    def dom0_dt_has_evtchn_nodes(self) -> bool:
        """4.17 copies the host's xen,evtchn-v1 nodes into dom0's device tree; 4.18 added
        the compatible to handle_node's skip list."""
        return self.version < (4, 18)


KNOWN_VERSIONS = {
    "4.17": (4, 17), "4.18": (4, 18), "4.19": (4, 19), "4.20": (4, 20),
    "4.21": (4, 21), "4.22": (4, 22), "master": (4, 23),
}
# The build of each release whose modelled behaviour was verified by booting it under
# QEMU on every recorded case (tests/data/xen/releases/index.json names the same builds;
# a test holds the two together). A release missing here is modelled from reading only,
# and claims over versions say so.
BOOTED_BUILDS = {
    "4.17": "4.17.7", "4.18": "4.18.6", "4.19": "4.19.6", "4.20": "4.20.4",
    "4.21": "4.21.2", "4.22": "4.22.0", "master": "c447b73",
}


def versions_as_verified(versions: list[str] | None = None) -> str:
    """`4.17 (booted: 4.17.7), ...`: how a claim over versions names what it ranges over."""
    return ", ".join(f"{v} (booted: {BOOTED_BUILDS[v]})" if v in BOOTED_BUILDS
                     else f"{v} (read only, never booted)"
                     for v in (versions if versions is not None else list(KNOWN_VERSIONS)))


def xen_profile(version: str) -> XenProfile:
    """`--xen VERSION`: 4.17 (default) ... 4.22 or master; a point release such as
    4.17.3 selects its branch. Raises ValueError for anything else."""
    v = version.strip().lower()
    if v.startswith("release-"):
        v = v[len("release-"):]
    parts = v.split(".")
    key = v if v == "master" else ".".join(parts[:2])
    if key not in KNOWN_VERSIONS or (key != "master" and not all(p.isdigit() for p in parts)):
        known = ", ".join(KNOWN_VERSIONS)
        raise ValueError(f"unknown Xen version {version!r} (known: {known})")
    return XenProfile(key, KNOWN_VERSIONS[key])


def has_compat(node: Node, compat: str) -> bool:
    """dt_device_is_compatible: any string of the list, case-insensitively."""
    prop = node.get("compatible")
    if prop is None:
        return False
    return compat.lower().encode("latin-1") in _lower_strings(prop.value)


def _lower_strings(value: bytes) -> set[bytes]:
    return set(value.lower().split(b"\0"))


def has_compat_exact(node: Node, compat: str) -> bool:
    """libfdt's fdt_node_check_compatible: any string of the list, case-sensitively."""
    prop = node.get("compatible")
    return prop is not None and compat in _c_strings(prop.value)


def _c_strings(value: bytes) -> list[str]:
    """The value split as C walks it (strlen + 1 at a time), tolerating junk."""
    return [s.decode("latin-1") for s in value.split(b"\0") if s] if value else []


def xen_read_string(prop: Property | None) -> tuple[int, str | None]:
    """dt_property_read_string: (0, s) | (-EINVAL absent) | (-ENODATA empty) |
    (-EILSEQ no NUL inside the value)."""
    if prop is None:
        return -EINVAL, None
    if not prop.value:
        return -ENODATA, None
    nul = prop.value.find(b"\0")
    if nul < 0:
        return -EILSEQ, None
    return 0, prop.value[:nul].decode("latin-1")


def read_u32(prop: Property | None) -> int | None:
    """dt_property_read_u32: None when absent or shorter than 4 bytes."""
    if prop is None or len(prop.value) < 4:
        return None
    return int.from_bytes(prop.value[:4], "big")


def inherited_cells(node: Node, name: str, default: int) -> int:
    """#address-cells / #size-cells as Xen reads them for NODE's children: the value of
    the nearest of NODE and its ancestors that has the property, else DEFAULT
    (device_tree_for_each_node carries each level's cells down, and dt_n_addr_cells
    walks up the unflattened tree)."""
    here: Node | None = node
    while here is not None:
        v = read_u32(here.get(name))
        if v is not None:
            return v
        here = here.parent
    return default


MAX_VIRT_CPUS = 128  # xen/arch/arm/include/asm/config.h


def host_cpus(tree: Tree) -> int:
    """The physical CPUs Xen brings up: dt_smp_init_cpus takes every child of /cpus with
    device_type = "cpu" once per distinct MPIDR (`reg`); the boot CPU is always there."""
    cpus = next((c for c in tree.root.children.values() if c.name == "cpus"), None)
    if cpus is None:
        return 1
    regs: set[bytes] = set()
    for child in cpus.children.values():
        rc, kind = xen_read_string(child.get("device_type"))
        if rc == 0 and kind == "cpu":
            reg = child.get("reg")
            regs.add(reg.value if reg is not None else b"")
    return max(len(regs), 1)


def xen_integer_option(tree: Tree, chosen: Node | None, name: str) -> int | None:
    """The value of `name=N` in /chosen/xen,xen-bootargs as Xen's parse_params takes it:
    the last occurrence wins, `-` and `_` in names are the same, and the number is
    simple_strtoll's (base 0, leading digits; trailing junk still assigns them)."""
    if chosen is None:
        return None
    rc, line = xen_read_string(chosen.get("xen,xen-bootargs"))
    if rc != 0 or line is None:
        return None
    value: int | None = None
    want = name.replace("-", "_")
    for word in line.split():
        key, eq, optval = word.partition("=")
        if not eq or key.replace("-", "_") != want:
            continue
        m = re.match(r"\s*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)", optval)
        if m is None:
            value = 0
            continue
        digits = m.group(2)
        n = int(digits, 16) if digits[:2].lower() == "0x" else int(digits, 8) \
            if digits.startswith("0") else int(digits)
        value = (-n if m.group(1) == "-" else n) & 0xFFFFFFFF  # an unsigned int option
    return value


def dom0_max_vcpus(tree: Tree, chosen: Node | None) -> int:
    """xen/arch/arm/domain_build.c dom0_max_vcpus() (the same in 4.17 ... 4.22): the
    `dom0_max_vcpus` option when non-zero, else every CPU of cpupool0 (all the CPUs Xen
    brought up: boot-time cpupools are not modelled), at most MAX_VIRT_CPUS."""
    n = xen_integer_option(tree, chosen, "dom0_max_vcpus") or host_cpus(tree)
    return min(n, MAX_VIRT_CPUS)


def node_name(node: Node) -> str:
    """dt_node_name: the node name without its unit address."""
    return node.basename


@dataclass(frozen=True, slots=True)
class Loc:
    """One place a finding points at."""

    file: str
    line: int
    column: int
    node: str
    end_line: int = 0  # where the place ends (the column after its last character);
    end_column: int = 0  # 0 when the source gives no end (a DTB, a built tree)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


def loc(node: Node, span: Span | None = None) -> Loc:
    s = span or node.span
    # (a node is named by several findings and their notes: one copy of its path)
    return Loc(s.file, s.line, s.column, intern(node.path), s.end_line, s.end_column)


def prop_loc(node: Node, prop: Property | None, offset: int | None = None) -> Loc:
    """The cell at `offset` of `prop` if the source wrote one, else the property,
    else the node."""
    if prop is None:
        return loc(node)
    if offset is not None:
        piece = prop.piece_at(offset)
        if piece is not None:
            return loc(node, piece.span)
    return loc(node, prop.span)


@dataclass(slots=True, eq=False)
class BootModule:
    """A boot module as bootfdt.c registers it (add_boot_module)."""

    node: Node
    kind: str  # "kernel" | "ramdisk" | "xsm" | "dtb" | "unknown"
    start: int
    size: int
    domU: bool


@dataclass(slots=True, eq=False)
class DomainSpec:
    """A domain Xen creates at boot, with what matters to its event channels."""

    domid: int
    name: str
    node: Node | None  # None for dom0 (built from the host tree, not a node)
    is_dom0: bool
    xenstore: bool = False  # xen,enhanced gives the domain a xenstore channel at boot
    xenstore_requested: bool = False  # xen,enhanced sets need_xenstore (4.21+: legacy too)
    enhanced: str = "absent"  # how Xen read xen,enhanced: absent/empty/<string>
    max_evtchn_port: int = DOMU_MAX_EVTCHN_PORT
    vcpus: int | None = None
    capabilities: int = 0

    @property
    def effective_max_port(self) -> int:
        return min(self.max_evtchn_port & 0xFFFFFFFF, 0x7FFFFFFF)


@dataclass(slots=True, eq=False)
class Endpoint:
    """A node that declares an event channel (or looks like it does)."""

    node: Node
    dialect: Dialect
    prop: Property | None
    cells: list[int]
    v1: bool  # compatible with xen,evtchn-v1 (the only thing Xen's walk accepts)
    seed_compat: bool  # compatible with "xen,evtchn" (the seed / booting.txt prose)


@dataclass(slots=True, eq=False)
class Config:
    """Everything boot and check read, indexed for linear-time use."""

    tree: Tree
    profile: XenProfile
    dialect_mode: str
    chosen: Node | None
    modules: list[BootModule] = field(default_factory=list)
    module_problem: tuple[Node, str] | None = None  # early panic in process_multiboot_node
    dom0_kernel: bool = False
    domU_kernel: bool = False
    domains: list[DomainSpec] = field(default_factory=list)  # in creation order
    domain_nodes: list[Node] = field(default_factory=list)  # /chosen children that are xen,domain
    endpoints: list[Endpoint] = field(default_factory=list)
    endpoint_of: dict[int, Endpoint] = field(default_factory=dict)
    xen_phandle: dict[int, int] = field(default_factory=dict)  # id(node) -> Xen's phandle
    by_phandle: dict[int, Node] = field(default_factory=dict)  # first node in FDT order
    dup_phandles: dict[int, list[Node]] = field(default_factory=dict)
    depth: dict[int, int] = field(default_factory=dict)
    order: dict[int, int] = field(default_factory=dict)  # FDT position of each node
    candidates: list[Node] = field(default_factory=list)

    # -- queries -----------------------------------------------------------
    @property
    def has_dom0(self) -> bool:
        """create_dom0 runs unless is_dom0less_mode (no dom0 kernel, some domU kernel)."""
        return not (not self.dom0_kernel and self.domU_kernel)

    def phandle(self, node: Node) -> int:
        return self.xen_phandle.get(id(node), 0)

    def find_by_phandle(self, ph: int) -> Node | None:
        """dt_find_node_by_phandle: the first node in FDT order with that phandle
        (phandle 0 finds the first node without one, normally the root)."""
        return self.by_phandle.get(ph)

    # -- construction ----------------------------------------------------------
    @classmethod
    def from_tree(cls, tree: Tree, profile: XenProfile | None = None,
                  dialect: str = "auto") -> Config:
        # dt_find_node_by_path("/chosen"): the first node whose full name matches,
        # compared with strcasecmp
        chosen = next((c for c in tree.root.children.values() if c.name.lower() == "chosen"),
                      None)
        cfg = cls(tree=tree, profile=profile or xen_profile("4.17"), dialect_mode=dialect,
                  chosen=chosen)
        cfg._scan()
        cfg._domains()
        cfg._classify_endpoints()
        return cfg

    def _scan(self) -> None:
        """One pass in FDT order: Xen's phandles, depths, modules, candidates."""
        kind_guess = 0
        depth = self.depth
        depth[id(self.tree.root)] = 0
        for i, node in enumerate(self.tree.walk()):
            self.order[id(node)] = i
            if node.parent is not None:
                depth[id(node)] = depth[id(node.parent)] + 1
            ph = 0
            for p in node.prop_list():
                if p.name in ("phandle", "linux,phandle"):
                    if ph == 0:
                        ph = int.from_bytes(p.value[:4].ljust(4, b"\0"), "big")
                elif p.name == "ibm,phandle":
                    ph = int.from_bytes(p.value[:4].ljust(4, b"\0"), "big")
            self.xen_phandle[id(node)] = ph
            if ph in self.by_phandle:
                if ph != 0:
                    self.dup_phandles.setdefault(ph, [self.by_phandle[ph]]).append(node)
            else:
                self.by_phandle[ph] = node
            cprop = node.get("compatible")
            compats = _lower_strings(cprop.value) if cprop is not None else set()
            if (node.get("xen,evtchn") is not None or b"xen,evtchn-v1" in compats
                    or b"xen,evtchn" in compats):
                self.candidates.append(node)
            if depth[id(node)] <= 3 and (b"xen,multiboot-module" in compats
                                         or b"multiboot,module" in compats):
                kind_guess = self._module(node, kind_guess)

    def _module(self, node: Node, kind_guess: int) -> int:
        """process_multiboot_node, for the modules that decide which domains exist."""
        if not node.path.startswith("/chosen"):
            return kind_guess
        reg = node.get("reg")
        parent = node.parent
        assert parent is not None
        ac = inherited_cells(parent, "#address-cells", 2)
        sc = inherited_cells(parent, "#size-cells", 1)
        if reg is None:
            if self.module_problem is None:
                self.module_problem = (node, f"node {node.name} missing `reg' property")
            return kind_guess
        if len(reg.value) < 4 * (ac + sc):
            if self.module_problem is None:
                self.module_problem = (
                    node, f"fdt: node `{node.name}': `reg` property length is too short")
            return kind_guess
        cells = reg.cells()
        start = _number(cells[:ac])
        size = _number(cells[ac:ac + sc])
        if has_compat_exact(node, "xen,linux-zimage") or has_compat_exact(node, "multiboot,kernel"):
            kind = "kernel"
        elif (has_compat_exact(node, "xen,linux-initrd")
              or has_compat_exact(node, "multiboot,ramdisk")):
            kind = "ramdisk"
        elif has_compat_exact(node, "xen,xsm-policy"):
            kind = "xsm"
        elif has_compat_exact(node, "multiboot,device-tree"):
            kind = "dtb"
        else:
            kind = "unknown"
        if kind == "unknown":
            # The first unknown module is the kernel, the second the ramdisk
            # (has_xsm_magic on the image is not modelled).
            kind = {0: "kernel", 1: "ramdisk"}.get(kind_guess, "unknown")
            kind_guess += 1
        domU = has_compat_exact(parent, COMPAT_DOMAIN)
        for m in self.modules:
            if m.kind == kind and m.start == start:
                if not domU:
                    m.domU = False
                return kind_guess
        self.modules.append(BootModule(node, kind, start, size, domU))
        return kind_guess

    def kernel_ok(self, domain_node: Node) -> bool:
        """kernel_probe for a domU: the last `multiboot,kernel` child names a registered
        kernel module (by address) of non-zero size."""
        mod: BootModule | None = None
        for child in domain_node.children.values():
            if has_compat(child, "multiboot,kernel"):
                reg = child.get("reg")
                ac = inherited_cells(domain_node, "#address-cells", 2)
                start = _number(reg.cells()[:ac]) if reg is not None else -1
                mod = next((m for m in self.modules if m.kind == "kernel" and m.start == start),
                           None)
        return mod is not None and mod.size != 0

    def dom0_kernel_ok(self) -> bool:
        mod = next((m for m in self.modules if m.kind == "kernel" and not m.domU), None)
        return mod is not None and mod.size != 0

    def _domains(self) -> None:
        for m in self.modules:
            if m.kind == "kernel":
                if m.domU:
                    self.domU_kernel = True
                else:
                    self.dom0_kernel = True
        if self.has_dom0:
            self.domains.append(DomainSpec(0, DOM0_NAME, None, True,
                                           max_evtchn_port=DOM0_MAX_EVTCHN_PORT,
                                           vcpus=dom0_max_vcpus(self.tree, self.chosen)))
        if self.chosen is None:
            return
        domid = 0
        for child in self.chosen.children.values():
            if not has_compat(child, COMPAT_DOMAIN):
                continue
            self.domain_nodes.append(child)
            domid += 1
            spec = DomainSpec(domid, node_name(child), child, False)
            spec.vcpus = read_u32(child.get("cpus"))
            rc, s = xen_read_string(child.get("xen,enhanced"))
            if rc == -EINVAL:
                spec.enhanced = "absent"
            elif rc == -ENODATA:
                spec.enhanced = "empty"
            elif rc == -EILSEQ:
                spec.enhanced = "unterminated"
            else:
                spec.enhanced = s or ""
            xs_values = ("enabled", "legacy") if self.profile.late_xenstore else ("enabled",)
            spec.xenstore_requested = spec.enhanced in ("empty", "unterminated") or (
                rc == 0 and s in xs_values)
            spec.xenstore = spec.xenstore_requested and not (
                self.profile.legacy_no_port and rc == 0 and s == "legacy")
            if self.profile.late_xenstore:
                caps = read_u32(child.get("capabilities"))
                if caps is not None:
                    spec.capabilities = caps
                    if caps & (DOMAIN_CAPS_HARDWARE | DOMAIN_CAPS_XENSTORE):
                        spec.max_evtchn_port = DOM0_MAX_EVTCHN_PORT
            self.domains.append(spec)

    def _classify_endpoints(self) -> None:
        """Decide each endpoint's dialect (`--dialect auto` decides per node)."""
        domain_ids = {id(n) for n in self.domain_nodes}
        chosen = self.chosen
        for node in self.candidates:
            prop = node.get("xen,evtchn")
            cells = prop.cells() if prop is not None else []
            v1 = has_compat(node, COMPAT_V1)
            seed_compat = has_compat(node, COMPAT_SEED)
            if self.dialect_mode == "xen":
                dialect = Dialect.XEN
            elif self.dialect_mode == "seed":
                dialect = Dialect.SEED
            else:
                # seed: compatible "xen,evtchn" (not -v1), a child of /chosen, 4 cells
                # whose phandles name xen,domain nodes; anything else is Xen's
                looks_seed = (
                    seed_compat and not v1 and chosen is not None and node.parent is chosen
                    and len(cells) >= 4
                    and id(self.by_phandle.get(cells[1], self.tree.root)) in domain_ids
                    and id(self.by_phandle.get(cells[3], self.tree.root)) in domain_ids)
                dialect = Dialect.SEED if looks_seed else Dialect.XEN
            ep = Endpoint(node, dialect, prop, cells, v1, seed_compat)
            self.endpoints.append(ep)
            self.endpoint_of[id(node)] = ep

    @property
    def dialects_used(self) -> str:
        kinds = {e.dialect for e in self.endpoints}
        if not kinds:
            return "none"
        if len(kinds) == 2:
            return "mixed"
        return next(iter(kinds)).value


def _number(cells: list[int]) -> int:
    v = 0
    for c in cells:
        v = v << 32 | c
    return v
