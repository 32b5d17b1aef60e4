#!/bin/sh
# Install what `evtchn-spec xen` needs, all from Debian 12's registry:
#   qemu-system-aarch64 (qemu-system-arm), the aarch64 cross compiler
#   (gcc-aarch64-linux-gnu, binutils-aarch64-linux-gnu), dtc (device-tree-compiler),
#   and Xen 4.17's arm64
#   hypervisor (xen-hypervisor-4.17-arm64, downloaded and unpacked into the
#   cache, never installed: it is a foreign-architecture boot file).
# Every package is named here and installed with --no-install-recommends: nothing may
# come from a Recommends (QEMU is always started with -nic none, so it needs no option
# ROM from ipxe-qemu). Idempotent and quiet; exits non-zero with one clear line when
# something fails.
# Needs root (apt-get). Cache: $EVTCHN_SPEC_CACHE or ${XDG_CACHE_HOME:-~/.cache}/evtchn-spec.
set -eu

CACHE="${EVTCHN_SPEC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/evtchn-spec}"
PKG=xen-hypervisor-4.17-arm64
IMAGE="$CACHE/xen/boot/xen-4.17-arm64"

fail() { echo "conformance/install.sh: $*" >&2; exit 1; }

have_tools() {
    command -v qemu-system-aarch64 >/dev/null 2>&1 &&
    command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 &&
    command -v aarch64-linux-gnu-objcopy >/dev/null 2>&1 &&
    command -v dtc >/dev/null 2>&1
}

if have_tools && [ -f "$IMAGE" ] && [ -f "$CACHE/xen/VERSION" ]; then
    exit 0
fi

command -v apt-get >/dev/null 2>&1 || fail "apt-get not found (a Debian 12 machine is required)"
if [ "$(id -u)" != 0 ]; then
    SUDO=sudo
    command -v sudo >/dev/null 2>&1 || fail "must run as root (or with sudo available)"
else
    SUDO=
fi

updated=no
apt_update() {
    if [ "$updated" = no ]; then
        $SUDO apt-get update -qq >/dev/null 2>&1 || fail "apt-get update failed"
        updated=yes
    fi
}

if ! have_tools; then
    apt_update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        qemu-system-arm gcc-aarch64-linux-gnu binutils-aarch64-linux-gnu \
        device-tree-compiler >/dev/null 2>&1 ||
        fail "apt-get install qemu-system-arm gcc-aarch64-linux-gnu device-tree-compiler failed"
    have_tools || fail "tools still missing after apt-get install"
fi

if [ ! -f "$IMAGE" ] || [ ! -f "$CACHE/xen/VERSION" ]; then
    if ! dpkg --print-foreign-architectures | grep -qx arm64; then
        $SUDO dpkg --add-architecture arm64 || fail "dpkg --add-architecture arm64 failed"
        updated=no
    fi
    apt_update
    mkdir -p "$CACHE/deb"
    rm -f "$CACHE"/deb/"$PKG"_*.deb
    # apt's sandbox user cannot write into root's home; download as is.
    (cd "$CACHE/deb" && apt-get download -qq "$PKG:arm64" >/dev/null 2>&1) ||
        fail "apt-get download $PKG:arm64 failed (is Debian 12 bookworm's main archive reachable?)"
    deb=$(ls "$CACHE"/deb/"$PKG"_*_arm64.deb 2>/dev/null | head -n 1)
    [ -n "$deb" ] || fail "downloaded $PKG .deb not found in $CACHE/deb"
    rm -rf "$CACHE/xen.tmp"
    mkdir -p "$CACHE/xen.tmp"
    dpkg-deb -x "$deb" "$CACHE/xen.tmp" || fail "dpkg-deb -x $deb failed"
    [ -f "$CACHE/xen.tmp/boot/xen-4.17-arm64" ] || fail "$deb has no /boot/xen-4.17-arm64"
    dpkg-deb -f "$deb" Version > "$CACHE/xen.tmp/VERSION"
    rm -rf "$CACHE/xen"
    mv "$CACHE/xen.tmp" "$CACHE/xen"
fi
exit 0
