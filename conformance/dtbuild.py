"""Build the DTB QEMU hands to Xen: QEMU's own `virt` tree plus the user's /chosen.

What is taken from the user's tree:
* every property and child of /chosen; the runner loads its own guest and
  writes each domain's kernel module itself (reusing the user's first
  `multiboot,kernel` node in place, so nodes under it survive; other
  `multiboot,*` modules are dropped), so the user never needs load addresses;
* top-level nodes whose name QEMU's tree does not already have and that hold
  an evtchn node (so endpoints outside /chosen can be tried); every other
  top-level node and root property is QEMU's (the machine must stay the
  machine QEMU emulates: a user's own GIC or memory node is not taken),
  except root properties QEMU's root does not have (a root phandle, say).
  So a tree that already is QEMU's machine (its `dumpdtb` with a /chosen
  added) is taken as it is: its hardware nodes are QEMU's own.

Phandles: QEMU numbers its nodes from 0x8000.  A phandle of a node the runner
takes (under /chosen, a taken top-level node, the root) that QEMU's tree also
uses is renumbered to the lowest value neither tree uses, and every reference
to it in the taken nodes is rewritten, in the properties that hold phandles
(PHANDLE_CELLS: xen,evtchn's peer cell, and a seed node's domain cells,
domain-cpupool, cpupool-cpus, interrupt-parent); a note of the result says
so.  What Xen does depends only on which node a phandle names (and on 0), so
the boot is the one the user's tree asks for; the reference is run on the
renumbered tree.  A reference to a phandle no taken node has is left alone:
in the merged tree it names whatever node of QEMU's has it, as Xen will see.

What the runner adds:
* one `multiboot,kernel` module per `xen,domain` child of /chosen (and one
  directly under /chosen for dom0), in the address/size cells Xen will use;
* `xen,xen-bootargs`: the user's `xen,xen-bootargs` first, then console on
  QEMU's PL011, `guest_loglvl=all` (Xen shows domU console_io output only
  then), no boot scrub, `dom0_mem` with dom0 (Xen's last occurrence of an
  option wins, so these always hold).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from evtchn_spec.grammar.errors import InputError, Span

from . import fdt
from .fdt import Fdt, FdtNode

MODULE_BASE = 0x5000_0000  # above where QEMU puts Xen and the DTB in virt RAM (0x4000_0000)
MODULE_STRIDE = 0x20_0000  # 2 MiB per guest copy
DOM0_MEM_MB = 128
BASE_BOOTARGS = ("console=dtuart dtuart=/pl011@9000000 loglvl=all guest_loglvl=all "
                 "bootscrub=0")
MODULE_COMPATS = ("multiboot,kernel", "multiboot,ramdisk", "multiboot,device-tree",
                  "multiboot,module")


@dataclass(frozen=True, slots=True)
class DomainPlan:
    """One domain the runner expects to see: where its guest goes and how it is named."""

    index: int          # position among the domains the runner loads a guest for
    domid: int          # the id Xen gives it (dom0 = 0, domUs 1.. in FDT order)
    name: str           # node name ("dom0" for the hardware domain)
    path: str           # DT path of the domain node ("/chosen" for dom0)
    load_addr: int
    tag: str            # what the guest prints in its hello line


@dataclass(slots=True)
class BootPlan:
    tree: Fdt
    domains: list[DomainPlan] = field(default_factory=list)
    dom0: bool = False
    ram_mb: int = 1024
    bootargs: str = ""
    notes: list[str] = field(default_factory=list)
    user_view: Fdt | None = None


def compile_source(path: str, *, cpp: bool = False, include_dirs: list[str] | None = None,
                   dtc: str = "dtc") -> bytes:
    """The user's tree as DTB bytes (.dtb read as is, .dts through dtc, optionally cpp first)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise InputError(Span(path, 1, 1), f"cannot read: {exc.strerror}") from exc
    if data[:4] == b"\xd0\x0d\xfe\xed":
        return data
    incs = include_dirs or []
    if cpp:
        cmd = ["cpp", "-nostdinc", "-undef", "-x", "assembler-with-cpp", "-D__DTS__", "-P"]
        for d in [str(p.parent), *incs]:
            cmd += ["-I", d]
        proc = subprocess.run([*cmd, str(p)], capture_output=True, check=False)
        if proc.returncode != 0:
            raise InputError(Span(path, 1, 1), "cpp failed: " + _first_line(proc.stderr))
        data = proc.stdout
    with tempfile.TemporaryDirectory(prefix="evtchn-xen-") as tmp:
        out = os.path.join(tmp, "user.dtb")
        cmd = [dtc, "-q", "-I", "dts", "-O", "dtb", "-o", out, "-i", str(p.parent)]
        for d in incs:
            cmd += ["-i", d]
        proc = subprocess.run([*cmd, "-"], input=data, capture_output=True, check=False)
        if proc.returncode != 0:
            msg = _first_line(proc.stderr).replace("<stdin>", path)
            raise InputError(Span(path, 1, 1), "dtc: " + msg)
        return Path(out).read_bytes()


def _first_line(raw: bytes) -> str:
    for line in raw.decode("utf-8", "replace").splitlines():
        if line.strip():
            return line.strip()
    return "failed"


def _cells(node_chain: list[FdtNode], name: str, default: int) -> int:
    """The #address-cells / #size-cells Xen uses for a child of the last node in the chain."""
    for node in reversed(node_chain):
        v = node.u32(name)
        if v is not None:
            return v
    return default


def _is_module(node: FdtNode) -> bool:
    return any(c in MODULE_COMPATS for c in node.strings("compatible"))


def _phandles(node: FdtNode) -> set[int]:
    out: set[int] = set()
    for _, n in node.walk():
        for key in ("phandle", "linux,phandle"):
            v = n.u32(key)
            if v is not None:
                out.add(v)
    return out


def _has_evtchn(node: FdtNode) -> bool:
    """Whether any node of this subtree looks like an evtchn endpoint."""
    return any(n.prop("xen,evtchn") is not None
               or any(c.startswith("xen,evtchn") for c in n.strings("compatible"))
               for _, n in node.walk())


def _memory_kib(node: FdtNode) -> int:
    raw = node.prop("memory")
    if not raw or len(raw) % 4:
        return 0
    return int.from_bytes(raw, "big")


def _with_kernel(children: list[FdtNode], addr: int, size: int, cells_a: int,
                 cells_s: int, *, add: bool = True) -> tuple[list[FdtNode], bool]:
    """CHILDREN with module nodes replaced by one kernel module at ADDR.

    The user's first multiboot,kernel node is reused in place (its name, other
    properties and sub-nodes stay, so evtchn nodes placed under a kernel module
    are still tried); other module nodes (ramdisks, partial DTBs) are dropped.
    Without a kernel node, one is added only when ADD; the flag returned says
    whether the children now hold a kernel.
    """
    reg = fdt.cells(addr, cells_a) + fdt.cells(size, cells_s)
    compat = fdt.string_list("multiboot,kernel", "multiboot,module")
    out: list[FdtNode] = []
    placed = False
    for c in children:
        if not _is_module(c):
            out.append(c)
        elif not placed and "multiboot,kernel" in c.strings("compatible"):
            c.set_prop("compatible", compat)
            c.set_prop("reg", reg)
            out.append(c)
            placed = True
    if not placed and add:
        out.append(FdtNode(f"module@{addr:x}", [("compatible", compat), ("reg", reg)]))
        placed = True
    return out, placed


# Properties whose cells hold phandles, as Xen reads them: name -> which cells
# (None: every cell).  xen,evtchn is <port &peer> (Xen's dialect) or <port &domA port
# &domB> (the seed dialect): its odd cells.
PHANDLE_CELLS: dict[str, str] = {
    "xen,evtchn": "odd",
    "domain-cpupool": "all",
    "cpupool-cpus": "all",
    "interrupt-parent": "all",
}


def _same_subtree(a: FdtNode, b: FdtNode) -> bool:
    return fdt.serialize(Fdt(a)) == fdt.serialize(Fdt(b))


def _set_phandle_props(node: FdtNode, old: int, new: int) -> None:
    for i, (key, value) in enumerate(node.props):
        if key in ("phandle", "linux,phandle", "ibm,phandle") and len(value) >= 4 and \
                int.from_bytes(value[:4], "big") == old:
            node.props[i] = (key, fdt.u32s(new) + value[4:])


def _rewrite_refs(node: FdtNode, mapping: dict[int, int]) -> None:
    for i, (key, value) in enumerate(node.props):
        which = PHANDLE_CELLS.get(key)
        if which is None or len(value) < 4:
            continue
        cells = [int.from_bytes(value[j:j + 4], "big") for j in range(0, len(value) - 3, 4)]
        changed = False
        for j, c in enumerate(cells):
            if (which == "all" or j % 2 == 1) and c in mapping:
                cells[j] = mapping[c]
                changed = True
        if changed:
            node.props[i] = (key, fdt.u32s(*cells) + value[len(cells) * 4:])


def _renumber(user: Fdt, qroot: FdtNode, taken_tops: list[FdtNode],
              qprops: set[str]) -> list[str]:
    """Renumber the phandles of the taken user nodes that QEMU's tree also uses (in
    place, in USER); returns one note per renumbered phandle."""
    qemu_ph = _phandles(qroot)
    chosen = user.root.child("chosen")
    taken: list[FdtNode] = []
    if chosen is not None:
        taken.extend(n for _, n in chosen.walk())
    for top in taken_tops:
        taken.extend(n for _, n in top.walk())
    root_holds = [k for k in ("phandle", "linux,phandle", "ibm,phandle")
                  if k not in qprops and user.root.prop(k) is not None]
    holders: dict[int, list[tuple[str, FdtNode]]] = {}
    paths = {id(n): p for p, n in user.root.walk()}
    for n in taken:
        for key in ("phandle", "linux,phandle", "ibm,phandle"):
            v = n.u32(key)
            if v is not None and v in qemu_ph:
                holders.setdefault(v, []).append((paths.get(id(n), n.name), n))
    for key in root_holds:
        v = user.root.u32(key)
        if v is not None and v in qemu_ph:
            holders.setdefault(v, []).append(("/", user.root))
    if not holders:
        return []
    used = _phandles(user.root) | qemu_ph
    mapping: dict[int, int] = {}
    nxt = 1
    for old in sorted(holders):
        while nxt in used:
            nxt += 1
        mapping[old] = nxt
        used.add(nxt)
    notes: list[str] = []
    for old, new in mapping.items():
        seen: set[int] = set()
        for _, n in holders[old]:
            if id(n) not in seen:
                _set_phandle_props(n, old, new)
                seen.add(id(n))
        where = ", ".join(sorted({p for p, _ in holders[old]}))
        notes.append(f"phandle {old:#x} of {where} is also QEMU's: renumbered to {new:#x} "
                     "(references to it rewritten)")
    for n in taken:
        _rewrite_refs(n, mapping)
    # The root's properties QEMU's root lacks are taken too (QEMU's own stay QEMU's).
    kept = [(k, v) for k, v in user.root.props if k not in qprops]
    probe = FdtNode("", kept)
    _rewrite_refs(probe, mapping)
    rewritten = dict(probe.props)
    user.root.props = [(k, rewritten.get(k, v)) if k not in qprops else (k, v)
                       for k, v in user.root.props]
    return notes


def has_dom0_kernel(user: Fdt) -> bool:
    chosen = user.root.child("chosen")
    return chosen is not None and any(
        "multiboot,kernel" in c.strings("compatible") for c in chosen.children)


def domain_nodes(chosen: FdtNode) -> list[FdtNode]:
    return [c for c in chosen.children if "xen,domain" in c.strings("compatible")]


def build(user: Fdt, qemu: Fdt, *, dom0: bool, source: str = "<input>",
          module_size: int = MODULE_STRIDE, add_kernels: bool = False) -> BootPlan:
    """Merge USER's /chosen into QEMU's tree (both parsed DTBs); see the module docstring.

    A xen,domain node without a multiboot,kernel module gets one only with
    ADD_KERNELS (otherwise Xen sees it as the user wrote it, kernel-less).
    `plan.user_view` is the user's tree as Xen sees it (module nodes rewritten),
    for running the reference on exactly that.
    """
    root = qemu.root
    plan = BootPlan(tree=qemu, dom0=dom0)
    qnames = {c.name for c in root.children}
    qprops = {k for k, _ in root.props}
    taken_tops = [top for top in user.root.children
                  if top.name != "chosen" and top.name not in qnames and _has_evtchn(top)]
    plan.notes.extend(_renumber(user, root, taken_tops, qprops))
    qchosen = root.child("chosen")
    if qchosen is None:
        qchosen = FdtNode("chosen")
        root.children.append(qchosen)
    uchosen = user.root.child("chosen") or FdtNode("chosen")
    user_bootargs = uchosen.prop("xen,xen-bootargs")
    for key, value in uchosen.props:
        if key != "xen,xen-bootargs":
            qchosen.set_prop(key, value)
    for key, value in user.root.props:
        if key not in qprops:  # e.g. a phandle on the root, to try a root-level endpoint
            root.props.append((key, value))
    qnodes = {c.name: c for c in root.children}
    for top in user.root.children:
        if top.name == "chosen":
            continue
        if top.name in qnodes or not _has_evtchn(top):
            same = top.name in qnodes and _same_subtree(top, qnodes[top.name])
            if not same:  # QEMU's own node, as a dumped tree has it: nothing to say
                plan.notes.append(
                    f"/{top.name}: not taken (QEMU's machine describes the hardware)")
            continue
        root.children.append(top)

    addr = MODULE_BASE
    index = 0
    cells_a = _cells([root, qchosen], "#address-cells", 2)
    cells_s = _cells([root, qchosen], "#size-cells", 1)
    if dom0:
        kept, _ = _with_kernel(uchosen.children, addr, module_size, cells_a, cells_s)
    else:
        kept = [c for c in uchosen.children if not _is_module(c)]
    if dom0:
        plan.domains.append(DomainPlan(index, 0, "dom0", "/chosen", addr, "hwdom"))
        index += 1
        addr += MODULE_STRIDE
    domid = 0
    for child in kept:
        if "xen,domain" not in child.strings("compatible"):
            continue
        domid += 1
        cells_a = _cells([root, qchosen, child], "#address-cells", 2)
        cells_s = _cells([root, qchosen, child], "#size-cells", 1)
        child.children, has_kernel = _with_kernel(child.children, addr, module_size, cells_a,
                                                  cells_s, add=add_kernels)
        if not has_kernel:
            plan.notes.append(f"/chosen/{child.name}: no multiboot,kernel module")
            continue
        tag = f"{index}:{child.name}"[:31]
        plan.domains.append(DomainPlan(index, domid, child.name, f"/chosen/{child.name}",
                                       addr, tag))
        index += 1
        addr += MODULE_STRIDE
    qchosen.children = [c for c in qchosen.children if not _is_module(c)]
    qchosen.children.extend(kept)
    plan.user_view = Fdt(FdtNode("", list(user.root.props), [
        FdtNode("chosen", list(uchosen.props), list(kept)),
        *(c for c in user.root.children if c.name != "chosen")]), list(user.reserved))

    args = BASE_BOOTARGS
    if dom0:
        args += f" dom0_mem={DOM0_MEM_MB}M"
    if user_bootargs:
        # The user's options first: Xen keeps the last occurrence of an option, and
        # the runner's console settings must win (QEMU's tree has no serial0 alias).
        args = user_bootargs.rstrip(b"\0").decode("latin-1") + " " + args
    qchosen.set_prop("xen,xen-bootargs", fdt.string(args))
    plan.bootargs = args
    plan.ram_mb = ram_needed(user, dom0=dom0)
    return plan


def ram_needed(user: Fdt, *, dom0: bool) -> int:
    """QEMU RAM in MiB: room for Xen, the modules, every domU's memory and dom0's."""
    chosen = user.root.child("chosen")
    mem_kib = sum(_memory_kib(d) for d in domain_nodes(chosen)) if chosen else 0
    need_mb = 768 + mem_kib // 1024 + (DOM0_MEM_MB if dom0 else 0)
    return max(1024, (need_mb + 255) // 256 * 256)
