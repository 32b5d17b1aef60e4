"""Where the conformance runner finds its tools, the hypervisor of each release, and
the guest build.

Everything downloaded or built (the Xen .debs, the unpacked hypervisors, the
hypervisors built from source, the guest image, QEMU's dumped DTBs) lives in a
cache directory outside the repository: ``$EVTCHN_SPEC_CACHE`` or
``${XDG_CACHE_HOME:-~/.cache}/evtchn-spec``.  conformance/install.sh fills it with
Debian's 4.17 and 4.20, conformance/build-xen.sh with a build of any other source
(``xen-builds/NAME/xen``); nothing here downloads or builds a hypervisor.

Where each release's hypervisor is (``--xen VERSION``):

* 4.17: ``xen/boot/xen-4.17-arm64`` (Debian 12's package, unpacked);
* 4.20: ``xen-4.20/boot/xen-4.20-arm64`` (Debian 13's package, unpacked);
* 4.18, 4.19, 4.21, 4.22: ``xen-builds/<X.Y.Z>/xen``, the newest point release
  built (``xen-builds/<X.Y>/xen`` when built under that name);
* master: ``xen-builds/master/xen``.
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
BUILD_SCRIPT = Path(__file__).resolve().parent / "build-xen.sh"
# The releases `--xen` boots: the names `boot --xen` accepts.
RELEASES = ("4.17", "4.18", "4.19", "4.20", "4.21", "4.22", "master")
# Debian's packages: release -> (cache directory, image inside it, package name).
DEBIAN_BUILDS = {
    "4.17": ("xen", "boot/xen-4.17-arm64", "xen-hypervisor-4.17-arm64"),
    "4.20": ("xen-4.20", "boot/xen-4.20-arm64", "xen-hypervisor-4.20-arm64"),
}
# The variable naming a directory of Xen source tarballs (xen-<version>.tar.xz).
XEN_SRC_ENV = "EVTCHN_SPEC_XEN_SRC"
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
    release: str = "4.17"       # the --xen name asked for ("" for --xen-image)
    xen_source: str = "debian"  # "debian" (a package), "build" (build-xen.sh), "image"


def _xen_version(xen_dir: Path) -> str:
    stamp = xen_dir / "VERSION"
    if stamp.is_file():
        return stamp.read_text().strip()
    return "unknown"


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(p) if p.isdigit() else -1 for p in name.split("."))


def release_build_dir(release: str) -> Path | None:
    """The cached build of RELEASE (4.18, 4.22, master, ...): its directory, or None."""
    builds = cache_dir() / "xen-builds"
    if release == "master":
        d = builds / "master"
        return d if (d / "xen").is_file() else None
    exact = builds / release
    if (exact / "xen").is_file():
        return exact
    found = [d for d in builds.glob(release + ".*")
             if d.name[len(release) + 1:].isdigit() and (d / "xen").is_file()]
    if not found:
        return None
    return max(found, key=lambda d: _version_key(d.name))


def _how_to_build(release: str) -> str:
    pattern = "xen-master-*.tar.xz" if release == "master" else f"xen-{release}.*.tar.xz"
    return (f"build it with: sh {BUILD_SCRIPT} ${XEN_SRC_ENV}/{pattern} "
            f"(or any Xen {release} source tarball or tree)")


def find_hypervisor(release: str) -> tuple[Path, str, str]:
    """(image, version, source) of RELEASE's hypervisor in the cache, or ToolsMissing
    with one line saying how to get it."""
    if release not in RELEASES:
        raise ToolsMissing(f"evtchn-spec xen: unknown Xen release {release!r} "
                           f"(known: {', '.join(RELEASES)})")
    if release in DEBIAN_BUILDS:
        sub, image, pkg = DEBIAN_BUILDS[release]
        xen_dir = cache_dir() / sub
        path = xen_dir / image
        if not path.is_file():
            raise ToolsMissing(f"evtchn-spec xen: the Xen {release} hypervisor {path} is not in "
                               f"the cache (Debian arm64 package {pkg}); install it with: "
                               f"sh {INSTALL_SCRIPT}")
        return path, _xen_version(xen_dir), "debian"
    d = release_build_dir(release)
    if d is None:
        raise ToolsMissing(f"evtchn-spec xen: Xen {release} is not built in "
                           f"{cache_dir() / 'xen-builds'}; {_how_to_build(release)}")
    return d / "xen", _xen_version(d), "build"


def available_releases() -> list[str]:
    """The releases whose hypervisor is in the cache, in release order."""
    out = []
    for r in RELEASES:
        try:
            find_hypervisor(r)
        except ToolsMissing:
            continue
        out.append(r)
    return out


def find_tools(release: str = "4.17", image: str | None = None) -> Tools:
    """Locate every tool and RELEASE's hypervisor (or the user's IMAGE), or raise
    ToolsMissing naming what is missing and how to get it."""
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
    if missing:
        raise ToolsMissing(
            "evtchn-spec xen: missing " + "; ".join(missing)
            + f"; install them with: sh {INSTALL_SCRIPT}"
        )
    assert qemu and gcc and ld and objcopy and dtc
    if image is not None:
        path = Path(image)
        if not path.is_file():
            raise ToolsMissing(f"evtchn-spec xen: --xen-image {image}: no such file")
        return Tools(qemu, path, "", gcc, ld, objcopy, dtc, release="", xen_source="image")
    xen_image, version, source = find_hypervisor(release)
    return Tools(qemu, xen_image, version, gcc, ld, objcopy, dtc, release=release,
                 xen_source=source)


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
