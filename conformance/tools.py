"""Where the conformance runner finds its tools, and the guest build.

Everything downloaded or built (the Xen .deb, the unpacked hypervisor, the
guest image, QEMU's dumped DTBs) lives in a cache directory outside the
repository: ``$EVTCHN_SPEC_CACHE`` or ``${XDG_CACHE_HOME:-~/.cache}/evtchn-spec``.
conformance/install.sh fills it; nothing here downloads anything.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

GUEST_DIR = Path(__file__).resolve().parent / "guest"
INSTALL_SCRIPT = Path(__file__).resolve().parent / "install.sh"
XEN_PACKAGE = "xen-hypervisor-4.17-arm64"
XEN_IMAGE_NAME = "xen-4.17-arm64"
CROSS = "aarch64-linux-gnu-"
GUEST_CFLAGS = (
    "-O2", "-ffreestanding", "-fno-builtin", "-nostdlib", "-fno-pic", "-mcmodel=small",
    "-mstrict-align", "-mgeneral-regs-only", "-fno-stack-protector", "-Wall", "-Wextra",
    "-Werror",
)


class ToolsMissing(RuntimeError):
    """A tool the live Xen run needs is not installed; the message says how to get it."""


def cache_dir() -> Path:
    env = os.environ.get("EVTCHN_SPEC_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "evtchn-spec"


@dataclass(frozen=True, slots=True)
class Tools:
    qemu: str
    xen_image: Path
    xen_version: str
    gcc: str
    ld: str
    objcopy: str
    dtc: str


def _xen_version(xen_dir: Path) -> str:
    stamp = xen_dir / "VERSION"
    if stamp.is_file():
        return stamp.read_text().strip()
    return "unknown"


def find_tools() -> Tools:
    """Locate every tool, or raise ToolsMissing naming what is missing and how to install it."""
    missing: list[str] = []
    qemu = shutil.which("qemu-system-aarch64")
    if not qemu:
        missing.append("qemu-system-aarch64 (Debian package qemu-system-arm)")
    gcc = shutil.which(CROSS + "gcc")
    ld = shutil.which(CROSS + "ld")
    objcopy = shutil.which(CROSS + "objcopy")
    if not (gcc and ld and objcopy):
        missing.append(f"{CROSS}gcc/ld/objcopy (Debian package gcc-aarch64-linux-gnu)")
    dtc = shutil.which("dtc")
    if not dtc:
        missing.append("dtc (Debian package device-tree-compiler)")
    xen_dir = cache_dir() / "xen"
    xen_image = xen_dir / "boot" / XEN_IMAGE_NAME
    if not xen_image.is_file():
        missing.append(f"the Xen 4.17 hypervisor {xen_image} (Debian arm64 package {XEN_PACKAGE})")
    if missing:
        raise ToolsMissing(
            "evtchn-spec xen: missing " + "; ".join(missing)
            + f"; install them with: sh {INSTALL_SCRIPT}"
        )
    assert qemu and gcc and ld and objcopy and dtc
    return Tools(qemu, xen_image, _xen_version(xen_dir), gcc, ld, objcopy, dtc)


def guest_image(tools: Tools) -> Path:
    """Build the guest (once per source version) and return its raw Image file."""
    sources = [GUEST_DIR / "start.S", GUEST_DIR / "guest.c", GUEST_DIR / "guest.ld"]
    digest = hashlib.sha256()
    for src in sources:
        digest.update(src.name.encode() + b"\0" + src.read_bytes())
    digest.update(" ".join(GUEST_CFLAGS).encode())
    out_dir = cache_dir() / "guest" / digest.hexdigest()[:16]
    image = out_dir / "guest.img"
    if image.is_file():
        return image
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f"build.{os.getpid()}"
    tmp.mkdir(exist_ok=True)
    steps = [
        [tools.gcc, *GUEST_CFLAGS, "-c", str(GUEST_DIR / "start.S"), "-o", str(tmp / "start.o")],
        [tools.gcc, *GUEST_CFLAGS, "-c", str(GUEST_DIR / "guest.c"), "-o", str(tmp / "guest.o")],
        [tools.ld, "-T", str(GUEST_DIR / "guest.ld"), "-static", "-nostdlib",
         "--no-warn-rwx-segments", "-o", str(tmp / "guest.elf"),
         str(tmp / "start.o"), str(tmp / "guest.o")],
        [tools.objcopy, "-O", "binary", str(tmp / "guest.elf"), str(tmp / "guest.img")],
    ]
    for cmd in steps:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"guest build failed: {' '.join(cmd)}: {proc.stderr.strip()}")
    (tmp / "guest.img").replace(image)
    shutil.rmtree(tmp, ignore_errors=True)
    return image
