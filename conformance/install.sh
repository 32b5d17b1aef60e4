#!/bin/sh
# Install what `evtchn-spec xen` needs, all from Debian 12's registry:
#   qemu-system-aarch64 (qemu-system-arm), the aarch64 cross compiler
#   (gcc-aarch64-linux-gnu, binutils-aarch64-linux-gnu), dtc (device-tree-compiler),
#   and the arm64 hypervisors Debian packages: Xen 4.17 (bookworm's
#   xen-hypervisor-4.17-arm64) and Xen 4.20 (trixie's xen-hypervisor-4.20-arm64),
#   downloaded and unpacked into the cache, never installed: they are
#   foreign-architecture boot files.  The trixie package is fetched through a
#   private apt configuration in the cache (its own sources list naming only
#   trixie/main for arm64, its own lists, state and archive directories): the
#   system's apt sources, preferences and state are never touched, so this
#   bookworm machine can never be upgraded by it.
# Every package is named here and installed with --no-install-recommends: nothing may
# come from a Recommends (QEMU is always started with -nic none, so it needs no option
# ROM from ipxe-qemu). Idempotent and quiet; exits non-zero with one clear line when
# something fails.
# Needs root (apt-get). Cache: $EVTCHN_SPEC_CACHE or ${XDG_CACHE_HOME:-~/.cache}/evtchn-spec.
set -eu

CACHE="${EVTCHN_SPEC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/evtchn-spec}"
PKG=xen-hypervisor-4.17-arm64
IMAGE="$CACHE/xen/boot/xen-4.17-arm64"
PKG420=xen-hypervisor-4.20-arm64
IMAGE420="$CACHE/xen-4.20/boot/xen-4.20-arm64"

fail() { echo "conformance/install.sh: $*" >&2; exit 1; }

have_tools() {
    command -v qemu-system-aarch64 >/dev/null 2>&1 &&
    command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 &&
    command -v aarch64-linux-gnu-objcopy >/dev/null 2>&1 &&
    command -v dtc >/dev/null 2>&1
}

if have_tools && [ -f "$IMAGE" ] && [ -f "$CACHE/xen/VERSION" ] &&
   [ -f "$IMAGE420" ] && [ -f "$CACHE/xen-4.20/VERSION" ]; then
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

# The mirror the system already uses for Debian's main archive (first URIs of a
# deb822 source whose suites are bookworm's, else of a one-line sources.list).
debian_uri() {
    uri=
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        uri=$(awk 'BEGIN{RS=""} /Suites:[^\n]*bookworm( |$|\n)/ && !/-security/ {
                 if (match($0, /URIs:[ \t]*[^ \t\n]+/)) {
                     u = substr($0, RSTART, RLENGTH); sub(/URIs:[ \t]*/, "", u); print u; exit } }' "$f")
        [ -n "$uri" ] && break
    done
    if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
        uri=$(awk '$1 == "deb" && $0 ~ / bookworm / && $0 !~ /security/ {
                 for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' /etc/apt/sources.list)
    fi
    echo "${uri:-http://deb.debian.org/debian}"
}

if [ ! -f "$IMAGE420" ] || [ ! -f "$CACHE/xen-4.20/VERSION" ]; then
    APTDIR="$CACHE/apt-trixie"
    mkdir -p "$APTDIR/lists/partial" "$APTDIR/archives/partial" "$APTDIR/parts" \
        "$APTDIR/prefs" "$CACHE/deb" || fail "cannot create $APTDIR"
    : > "$APTDIR/status"
    echo "deb [arch=arm64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $(debian_uri) trixie main" \
        > "$APTDIR/sources.list"
    # Every directory apt reads or writes is the private one: sources, preferences,
    # lists, the (empty) dpkg status and the archive cache.
    set -- -o "Dir::Etc::SourceList=$APTDIR/sources.list" -o "Dir::Etc::SourceParts=$APTDIR/parts" \
        -o "Dir::Etc::Preferences=$APTDIR/preferences" -o "Dir::Etc::PreferencesParts=$APTDIR/prefs" \
        -o "Dir::State::Lists=$APTDIR/lists" -o "Dir::State::status=$APTDIR/status" \
        -o "Dir::Cache=$APTDIR" -o "Dir::Cache::Archives=$APTDIR/archives" \
        -o APT::Architecture=arm64 -o APT::Architectures::=arm64 -o Debug::NoLocking=1 \
        -o APT::Install-Recommends=false
    apt-get "$@" update -qq >/dev/null 2>&1 ||
        fail "apt-get update of the private trixie list ($APTDIR/sources.list) failed"
    rm -f "$CACHE"/deb/"$PKG420"_*.deb
    (cd "$CACHE/deb" && apt-get "$@" download -qq "$PKG420:arm64" >/dev/null 2>&1) ||
        fail "apt-get download $PKG420:arm64 from trixie failed (is Debian 13's main archive reachable?)"
    deb=$(ls "$CACHE"/deb/"$PKG420"_*_arm64.deb 2>/dev/null | head -n 1)
    [ -n "$deb" ] || fail "downloaded $PKG420 .deb not found in $CACHE/deb"
    rm -rf "$CACHE/xen-4.20.tmp"
    mkdir -p "$CACHE/xen-4.20.tmp"
    dpkg-deb -x "$deb" "$CACHE/xen-4.20.tmp" || fail "dpkg-deb -x $deb failed"
    [ -f "$CACHE/xen-4.20.tmp/boot/xen-4.20-arm64" ] || fail "$deb has no /boot/xen-4.20-arm64"
    dpkg-deb -f "$deb" Version > "$CACHE/xen-4.20.tmp/VERSION"
    rm -rf "$CACHE/xen-4.20"
    mv "$CACHE/xen-4.20.tmp" "$CACHE/xen-4.20"
fi
exit 0
