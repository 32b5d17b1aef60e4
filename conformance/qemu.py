"""Boot a device tree on the real Xen under QEMU and capture Xen's console.

One run: dump QEMU's `virt` tree for the RAM size needed, merge the user's
/chosen into it (dtbuild), patch a copy of the guest per domain (its tag, and
for runtime traces its command table), start QEMU with Xen as `-kernel`, and
read the serial console until every domain has reported, Xen has panicked, or
the hard timeout has passed.  QEMU is always stopped before returning.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import queue
import re
import struct
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import dtbuild, fdt
from .fdt import Fdt
from .report import parse_guests
from .tools import Tools, cache_dir, guest_image

MACHINE = "virt,gic-version=3,virtualization=on"
CPU = "cortex-a57"
SMP = 2
# No display and no network card: the virt machine's default NIC wants an option ROM
# (efi-virtio.rom, from ipxe-qemu, only a Recommends of qemu-system-arm), and the guests
# talk through Xen's console alone. Every QEMU start, dumpdtb included, passes these.
NO_DEVICES = ("-display", "none", "-nic", "none")
CFG_MAGIC = b"EVTCFG01"
MAX_CMDS = 1024  # guest.c's MAX_CMDS: commands per domain and slots per trace
FLAG_NO_SHUTDOWN = 1
T0_MS = 2500  # slot 0 of a trace, in ms after QEMU starts (a boot takes ~0.4 s)
OPS = {"send": 1, "close": 2, "unmask": 3, "setmask": 4, "clear": 5, "alloc": 6, "bind": 7,
       "ipi": 8, "virq": 9, "bind_vcpu": 10, "status": 11, "reset": 12, "reset_cont": 13}

_PANIC_RE = re.compile(r"^\(XEN\) Panic on CPU \d+:")
_STARS_RE = re.compile(r"^\(XEN\) \*{20,}\s*$")
_TRAILING_STARS_RE = re.compile(r"\S\*{20,}\s*$")  # a panic text without its newline
_DONE_RE = re.compile(r"^(?:\(d\d+\) )?@evt done\b")
_LATE_RE = re.compile(r"^(?:\(d\d+\) )?@evt late\b")
_HELLO_RE = re.compile(r"^(?:\(d\d+\) )?@evt hello tag=(\S+)")


@dataclass(frozen=True, slots=True)
class Command:
    """One step a guest performs at the start of time slot `slot`."""

    slot: int
    op: str
    port: int
    arg: int = 0


@dataclass(slots=True)
class RunResult:
    console: list[str]
    reason: str                     # "done" | "panic" | "timeout" | "exited"
    plan: dtbuild.BootPlan
    returncode: int | None = None
    notes: list[str] = field(default_factory=list)


def dump_qemu_dtb(tools: Tools, ram_mb: int) -> bytes:
    """QEMU's own tree for this machine (cached per QEMU binary and RAM size)."""
    key = hashlib.sha256(
        f"{tools.qemu}:{os.path.getmtime(tools.qemu)}:{ram_mb}:{SMP}:{NO_DEVICES}".encode())
    path = cache_dir() / "qemu-dtb" / f"virt-{ram_mb}M-{key.hexdigest()[:12]}.dtb"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        proc = subprocess.run(
            [tools.qemu, "-machine", f"{MACHINE},dumpdtb={tmp}", "-cpu", CPU,
             "-smp", str(SMP), "-m", str(ram_mb), *NO_DEVICES],
            capture_output=True, text=True, timeout=60, check=False)
        if not tmp.is_file():
            raise RuntimeError(f"qemu dumpdtb failed: {proc.stderr.strip()}")
        tmp.replace(path)
    return path.read_bytes()


def patch_guest(image: bytes, tag: str, *, flags: int = 0, slot_ms: int = 0,
                nslots: int = 0, t0_ms: int = 0,
                cmds: list[Command] | tuple[Command, ...] = ()) -> bytes:
    """A copy of the guest image with its configuration block filled in."""
    off = image.find(CFG_MAGIC)
    if off < 0 or image.find(CFG_MAGIC, off + 1) >= 0:
        raise RuntimeError("guest image: configuration block not found exactly once")
    if len(cmds) > MAX_CMDS:
        raise ValueError(f"at most {MAX_CMDS} commands per domain")
    raw_tag = tag.encode("ascii", "replace")[:31]
    block = bytearray(CFG_MAGIC + raw_tag + b"\0" * (32 - len(raw_tag)))
    block += struct.pack("<5I", flags, nslots, slot_ms, t0_ms, len(cmds))
    for c in cmds:
        block += struct.pack("<4I", c.slot, OPS[c.op], c.port, c.arg)
    out = bytearray(image)
    out[off:off + len(block)] = block
    return bytes(out)


def _reader(stream: object, q: queue.Queue[str | None]) -> None:
    assert hasattr(stream, "readline")
    try:
        for raw in iter(stream.readline, b""):
            q.put(raw.decode("utf-8", "replace").rstrip("\r\n").replace("\r", ""))
    except (OSError, ValueError):
        pass  # the pipe was closed under us: QEMU is gone
    q.put(None)


def boot(tools: Tools, user: Fdt, *, dom0: bool, timeout: float = 120.0,
         source: str = "<input>", commands: dict[int, list[Command]] | None = None,
         slot_ms: int = 0, nslots: int = 0, keep_dir: str | None = None,
         add_kernels: bool = False) -> RunResult:
    """Boot USER's tree on Xen; COMMANDS (keyed by domid) make the guests act in time slots.

    With slots, slot 0 starts at an absolute time T0 on the counter all domains
    share; a guest that starts after T0 says so ("@evt late") and the run is
    repeated with T0 doubled; a run whose calls and dumps overlapped in time
    (order_problems) is repeated too (4 runs at most; the last one's
    problems then show up as "incomplete" in the run JSON).
    """
    t0_ms = T0_MS if nslots else 0
    notes: list[str] = []
    for _ in range(4):
        result = _boot_once(tools, user, dom0=dom0, timeout=timeout + t0_ms / 1000,
                            source=source, commands=commands or {}, slot_ms=slot_ms,
                            nslots=nslots, t0_ms=t0_ms, keep_dir=keep_dir,
                            add_kernels=add_kernels)
        result.notes = notes
        if not nslots or result.reason != "done":
            break
        if any(_LATE_RE.match(line) for line in result.console):
            notes.append(f"a guest started after T0={t0_ms} ms; retried")
            t0_ms *= 2
            continue
        problems = order_problems(result.console, nslots)
        if not problems:
            break
        notes.append("retried: " + "; ".join(problems))
    return result


def order_problems(console: list[str], nslots: int) -> list[str]:
    """Slots whose calls and dumps did not happen in order (from the guests' clocks).

    Slot i is sound when every call of slot i finished strictly before any
    domain began its dump i+1, and every dump i ended strictly before any call
    of slot i (the state each call starts from).
    """
    guests = parse_guests(console)
    calls: dict[int, list[int]] = {}
    for g in guests.values():
        for made in g.calls:
            if "t_ms" in made:
                calls.setdefault(made["slot"], []).append(made["t_ms"])
    out: list[str] = []
    for i in range(nslots):
        begins = [g.began_ms[i + 1] for g in guests.values() if i + 1 in g.began_ms]
        ends = [g.ended_ms[i] for g in guests.values() if i in g.ended_ms]
        mine = calls.get(i, [])
        if len(begins) != len(guests) or len(ends) != len(guests):
            out.append(f"slot {i}: a dump is missing")
        elif mine and (max(mine) >= min(begins) or max(ends) >= min(mine)):
            out.append(f"slot {i}: calls and dumps overlapped")
    return out


def _boot_once(tools: Tools, user: Fdt, *, dom0: bool, timeout: float, source: str,
               commands: dict[int, list[Command]], slot_ms: int, nslots: int, t0_ms: int,
               keep_dir: str | None, add_kernels: bool) -> RunResult:
    ram = dtbuild.ram_needed(user, dom0=dom0)
    qemu_tree = fdt.parse(dump_qemu_dtb(tools, ram))
    image = guest_image(tools).read_bytes()
    user = fdt.parse(fdt.serialize(user))  # build() edits the tree: keep the caller's intact
    plan = dtbuild.build(user, qemu_tree, dom0=dom0, source=source, module_size=len(image),
                         add_kernels=add_kernels)
    with tempfile.TemporaryDirectory(prefix="evtchn-xen-", dir=keep_dir) as tmp:
        dtb_path = Path(tmp) / "boot.dtb"
        dtb_path.write_bytes(fdt.serialize(plan.tree))
        argv = [tools.qemu, "-machine", MACHINE, "-cpu", CPU, "-smp", str(SMP),
                "-m", str(plan.ram_mb), *NO_DEVICES, "-monitor", "none",
                "-serial", "stdio", "-no-reboot", "-kernel", str(tools.xen_image),
                "-dtb", str(dtb_path)]
        for d in plan.domains:
            flags = FLAG_NO_SHUTDOWN if d.domid == 0 else 0
            g = patch_guest(image, d.tag, flags=flags, slot_ms=slot_ms, nslots=nslots,
                            t0_ms=t0_ms, cmds=commands.get(d.domid, []))
            gpath = Path(tmp) / f"guest{d.index}.img"
            gpath.write_bytes(g)
            argv += ["-device", f"loader,file={gpath},addr={d.load_addr:#x},force-raw=on"]
        return _run(argv, plan, timeout)


def _run(argv: list[str], plan: dtbuild.BootPlan, timeout: float) -> RunResult:
    expected = {d.tag for d in plan.domains}
    console: list[str] = []
    done: set[str] = set()
    tag_by_prefix: dict[str, str] = {}
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    q: queue.Queue[str | None] = queue.Queue()
    t = threading.Thread(target=_reader, args=(proc.stdout, q), daemon=True)
    t.start()
    reason = "timeout"
    in_panic = False
    try:
        while True:
            left = timeout - (time.monotonic() - start)
            if left <= 0:
                break
            try:
                line = q.get(timeout=min(left, 0.5))
            except queue.Empty:
                continue
            if line is None:
                reason = "exited"
                break
            console.append(line)
            if _PANIC_RE.match(line):
                in_panic = True
            elif in_panic and (_STARS_RE.match(line) or _TRAILING_STARS_RE.search(line)):
                reason = "panic"
                break
            m = _HELLO_RE.match(line)
            if m:
                tag_by_prefix[line.split("@evt", 1)[0]] = m.group(1)
            if _DONE_RE.match(line):
                tag = tag_by_prefix.get(line.split("@evt", 1)[0])
                if tag is not None:
                    done.add(tag)
                if expected and done >= expected:
                    reason = "done"
                    break
            if not expected and "Freed " in line and "init memory" in line:
                reason = "done"  # nothing to wait for: Xen finished booting
                break
    finally:
        _stop(proc)
        t.join(timeout=5)
        if proc.stdout is not None:
            proc.stdout.close()
    # Drain whatever the reader got before QEMU stopped.
    while True:
        try:
            line = q.get_nowait()
        except queue.Empty:
            break
        if line is not None and reason in ("exited",):
            console.append(line)
    return RunResult(console, reason, plan, proc.returncode)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the QEMU we started (its own process group), politely then firmly."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
            proc.wait(timeout=5)
