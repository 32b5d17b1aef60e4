#!/usr/bin/env bash
# Installs what evtchn-spec needs on Debian 12, from a brand-new machine on:
#   - from Debian: dtc and cpp (the references for DTS syntax), python3-venv, and
#     gcc and rustc (the tests compile the per-guest port headers `table` writes),
#     and patch (the tests apply `fix --diff` with it);
#   - into .venv/ beside this file (a virtual environment of its own, so Debian's
#     PEP 668 protection of the system Python never applies): the package, editable,
#     with its test tools, from PyPI;
#   - for `evtchn-spec xen`: the real Xen for arm64 with QEMU and the cross compiler
#     for our small guest (conformance/install.sh; skip it with EVTCHN_SPEC_NO_XEN=1).
# Afterwards: .venv/bin/evtchn-spec, .venv/bin/python -m pytest (or `. .venv/bin/activate`).
# Idempotent: a second run changes nothing that is already right. Needs root or sudo
# only when a Debian package is missing. PYTHON picks the interpreter (default python3).
set -euo pipefail
cd "$(dirname "$0")"

PY=${PYTHON:-python3}
VENV=.venv

say() { echo "install.sh: $*" >&2; }
fail() { say "$*"; exit 1; }
as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else fail "must run as root (or with sudo) to install Debian packages: $*"; fi
}
apt_install() {
  command -v apt-get >/dev/null 2>&1 || fail "apt-get not found; install by hand: $*"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq >/dev/null || fail "apt-get update failed"
  as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null ||
    fail "apt-get install $* failed"
}

command -v "$PY" >/dev/null 2>&1 || fail "$PY not found (Python 3.11 or later is needed)"
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
  fail "$PY is $("$PY" -V 2>&1); Python 3.11 or later is needed"

# A venv that works is kept: its interpreter runs and it has pip.
venv_ok() { [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -m pip --version >/dev/null 2>&1; }

missing=()
command -v dtc >/dev/null 2>&1 || missing+=(device-tree-compiler)
command -v cpp >/dev/null 2>&1 || missing+=(cpp)
command -v gcc >/dev/null 2>&1 || missing+=(gcc libc6-dev)
command -v rustc >/dev/null 2>&1 || missing+=(rustc)
command -v patch >/dev/null 2>&1 || missing+=(patch)
# Debian ships venv's pip bootstrap (ensurepip) apart, as python3-venv; other Pythons
# (pyenv, a self-built one) carry it themselves. Try the real thing rather than guess.
if ! venv_ok; then
  probe=$(mktemp -d)
  if ! "$PY" -m venv "$probe/v" >/dev/null 2>&1; then
    ver=$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
    missing+=(python3-venv "python$ver-venv")
  fi
  rm -rf "$probe"
fi
if [ ${#missing[@]} -gt 0 ]; then
  apt_install "${missing[@]}"
fi

if ! venv_ok; then
  rm -rf "$VENV"
  "$PY" -m venv "$VENV" || fail "$PY -m venv $VENV failed"
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e '.[test]' ||
  fail "pip install -e '.[test]' into $VENV failed"
# An editable install leaves the bytecode to the first runs, which never write it where
# PYTHONDONTWRITEBYTECODE is set (then every command compiles the project again, ~0.1 s);
# compile it once now, as `pip install` does for a regular install. Python still checks
# each file's timestamp, so an edited source is never run stale.
"$VENV/bin/python" -m compileall -q refimpl grammar proofs conformance >/dev/null
if [ "${EVTCHN_SPEC_NO_XEN:-0}" != 1 ]; then
  sh conformance/install.sh
fi
echo "evtchn-spec installed: $(pwd)/$VENV/bin/evtchn-spec"
