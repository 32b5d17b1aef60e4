#!/bin/sh
# Build a Xen hypervisor for arm64 from source into the cache, for `evtchn-spec xen`.
#
#   sh conformance/build-xen.sh SOURCE [NAME]
#
# SOURCE is a source tarball (.tar.xz, .tar.gz, .tar.bz2, .tar) or an unpacked Xen
# tree (the top of the tree, holding xen/, or xen/ itself): a release, master, or
# a fork of your own.  NAME (default: "master" for a tree whose version ends in
# -unstable, else the tree's version, e.g. 4.22.0) names the build:
#
#   $CACHE/xen-builds/NAME/xen       the image QEMU's -kernel boots
#   $CACHE/xen-builds/NAME/config    the .config it was built with
#   $CACHE/xen-builds/NAME/VERSION   the version the tree says (make xenversion)
#   $CACHE/xen-builds/NAME/STAMP     hash of the source, the base config and this script
#   $CACHE/xen-builds/NAME/SECONDS   how long the build took
#
# The configuration is Debian's own for its 4.20 package (boot/xen-4.20-arm64.config
# of the package conformance/install.sh unpacks), brought to the tree's options
# with `make olddefconfig`, so what decides static event channels (XSM with SILO
# by default, CONFIG_STATIC_EVTCHN where the option exists) is as in Debian's
# builds.  A second call with the same source is instant (the STAMP matches).
# A directory is copied before building: the user's tree is never written.
#
# Needs: the aarch64 cross gcc (install.sh), a host gcc for Kconfig's tools, make,
# flex, bison, python3, and xz/bzip2 to unpack a tarball; all but the cross gcc are
# installed from Debian (apt-get, --no-install-recommends) when missing: a minimal
# Debian has none of them but python3.  Cache: $EVTCHN_SPEC_CACHE or ${XDG_CACHE_HOME:-~/.cache}/evtchn-spec.
# Exits non-zero with one line on stderr when something fails.
set -eu

fail() { echo "conformance/build-xen.sh: $*" >&2; exit 1; }

[ $# -ge 1 ] && [ $# -le 2 ] || fail "usage: sh conformance/build-xen.sh SOURCE [NAME]"
SOURCE=$1
NAME=${2:-}
CACHE="${EVTCHN_SPEC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/evtchn-spec}"
BASECONFIG="$CACHE/xen-4.20/boot/xen-4.20-arm64.config"
HERE=$(cd "$(dirname "$0")" && pwd)
CROSS=aarch64-linux-gnu-
JOBS=${EVTCHN_SPEC_BUILD_JOBS:-$(nproc 2>/dev/null || echo 2)}

[ -e "$SOURCE" ] || fail "$SOURCE: no such file or directory"
[ -f "$BASECONFIG" ] ||
    fail "Debian's Xen 4.20 configuration $BASECONFIG is missing; run: sh $HERE/install.sh"
command -v "${CROSS}gcc" >/dev/null 2>&1 ||
    fail "${CROSS}gcc not found; run: sh $HERE/install.sh"
command -v python3 >/dev/null 2>&1 || fail "python3 not found (Xen's build needs it)"

# The host tools of the build, from Debian when missing.
need=
command -v make >/dev/null 2>&1 || need="$need make"
command -v flex >/dev/null 2>&1 || need="$need flex"
command -v bison >/dev/null 2>&1 || need="$need bison"
command -v gcc >/dev/null 2>&1 || need="$need gcc libc6-dev"
command -v xz >/dev/null 2>&1 || need="$need xz-utils"
command -v bzip2 >/dev/null 2>&1 || need="$need bzip2"
if [ -n "$need" ]; then
    if [ "$(id -u)" != 0 ]; then SUDO=sudo; else SUDO=; fi
    $SUDO apt-get update -qq >/dev/null 2>&1 || fail "apt-get update failed"
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $need \
        >/dev/null 2>&1 || fail "apt-get install$need failed"
fi

# The source's hash: a tarball's bytes, or a tree's files (build products and VCS
# data left out, so building or committing in the user's tree does not change it).
tree_hash() {
    (cd "$1" && find . \( -name .git -o -name '*.o' -o -name '*.d' -o -name '.*.cmd' \
            -o -name '.*.d' -o -name '*.a' -o -name '*.map' -o -name '.config*' \
            -o -path ./xen/include/config -o -path ./xen/include/generated \) -prune -o -type f -print |
        LC_ALL=C sort | while IFS= read -r f; do
            printf '%s\n' "$f"; sha256sum < "$f"
        done) | sha256sum | cut -d' ' -f1
}
if [ -d "$SOURCE" ]; then
    SRC=$(cd "$SOURCE" && pwd)
    if [ ! -f "$SRC/xen/Makefile" ] && [ -f "$SRC/Makefile" ] && [ -d "$SRC/arch/arm" ]; then
        SRC=$(dirname "$SRC")     # given xen/ itself
    fi
    [ -f "$SRC/xen/Makefile" ] || fail "$SOURCE: not a Xen tree (no xen/Makefile)"
    SRCHASH=tree-$(tree_hash "$SRC")
else
    SRCHASH=file-$(sha256sum < "$SOURCE" | cut -d' ' -f1)
fi
STAMP="$SRCHASH config-$(sha256sum < "$BASECONFIG" | cut -d' ' -f1) script-$(sha256sum < "$0" | cut -d' ' -f1)"

# A named build already made from this very source: nothing to do.
if [ -n "$NAME" ] && [ -f "$CACHE/xen-builds/$NAME/xen" ] &&
   [ "$(cat "$CACHE/xen-builds/$NAME/STAMP" 2>/dev/null)" = "$STAMP" ]; then
    echo "$CACHE/xen-builds/$NAME/xen"
    exit 0
fi
# Unnamed: any build with this stamp.
if [ -z "$NAME" ]; then
    for s in "$CACHE"/xen-builds/*/STAMP; do
        [ -f "$s" ] || continue
        if [ "$(cat "$s")" = "$STAMP" ] && [ -f "$(dirname "$s")/xen" ]; then
            echo "$(dirname "$s")/xen"
            exit 0
        fi
    done
fi

mkdir -p "$CACHE/xen-builds" || fail "cannot create $CACHE/xen-builds"
WORK="$CACHE/xen-builds/.work.$$"
rm -rf "$WORK"
mkdir -p "$WORK/src"
trap 'rm -rf "$WORK"' EXIT INT TERM
if [ -d "$SOURCE" ]; then
    (cd "$SRC" && tar --exclude=.git -cf - .) | (cd "$WORK/src" && tar -xf -) ||
        fail "copying $SOURCE failed"
else
    tar -xf "$SOURCE" -C "$WORK/src" || fail "unpacking $SOURCE failed"
    # A tarball holds the tree at its top or in one directory.
    if [ ! -f "$WORK/src/xen/Makefile" ]; then
        top=$(ls -A "$WORK/src")
        [ "$(echo "$top" | wc -l)" = 1 ] && [ -f "$WORK/src/$top/xen/Makefile" ] ||
            fail "$SOURCE: not a Xen source tarball (no xen/Makefile)"
        mv "$WORK/src/$top" "$WORK/tree"
        rm -rf "$WORK/src"
        mv "$WORK/tree" "$WORK/src"
    fi
fi
XEN="$WORK/src/xen"
set -- XEN_TARGET_ARCH=arm64 CROSS_COMPILE="$CROSS"
VERSION=$(make -s -C "$XEN" "$@" xenversion 2>/dev/null | tail -n 1) || VERSION=
[ -n "$VERSION" ] || fail "$SOURCE: make xenversion printed nothing"
if [ -z "$NAME" ]; then
    case "$VERSION" in
        *-unstable) NAME=master ;;
        *) NAME=$VERSION ;;
    esac
    if [ -f "$CACHE/xen-builds/$NAME/xen" ] &&
       [ "$(cat "$CACHE/xen-builds/$NAME/STAMP" 2>/dev/null)" = "$STAMP" ]; then
        echo "$CACHE/xen-builds/$NAME/xen"
        exit 0
    fi
fi
case "$NAME" in
    */*|.*|'') fail "bad build name '$NAME'" ;;
esac

LOG="$WORK/build.log"
start=$(date +%s)
make -C "$XEN" "$@" distclean >"$LOG" 2>&1 || true
cp "$BASECONFIG" "$XEN/.config"
make -C "$XEN" "$@" olddefconfig >>"$LOG" 2>&1 ||
    fail "make olddefconfig failed for $SOURCE: $(tail -n 1 "$LOG")"
make -C "$XEN" -j"$JOBS" "$@" >>"$LOG" 2>&1 ||
    fail "make failed for $SOURCE: $(grep -m 1 -i 'error' "$LOG" || tail -n 1 "$LOG")"
end=$(date +%s)
[ -f "$XEN/xen" ] || fail "the build of $SOURCE made no xen/xen"

OUT="$CACHE/xen-builds/$NAME"
NEW="$WORK/out"
mkdir -p "$NEW"
cp "$XEN/xen" "$NEW/xen"
cp "$XEN/.config" "$NEW/config"
cp "$LOG" "$NEW/build.log"
echo "$VERSION" > "$NEW/VERSION"
echo $((end - start)) > "$NEW/SECONDS"
echo "$STAMP" > "$NEW/STAMP"
rm -rf "$OUT"
mv "$NEW" "$OUT"
echo "$OUT/xen"
