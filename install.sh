#!/usr/bin/env bash
# Installs what evtchn-spec needs on Debian 12: dtc and cpp (the references for DTS
# syntax), the Python package with its test tools, and, for `evtchn-spec xen`, the
# real Xen 4.17 for arm64 with QEMU and the cross compiler for our small guest
# (conformance/install.sh; skip it with EVTCHN_SPEC_NO_XEN=1).
# Idempotent; safe to run again. Run as root or with sudo available.
set -euo pipefail
cd "$(dirname "$0")"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v dtc >/dev/null 2>&1 || ! command -v cpp >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq
  as_root apt-get install -y -qq device-tree-compiler cpp >/dev/null
fi
python3 -m pip install -q --disable-pip-version-check -e '.[test]'
# An editable install leaves the bytecode to the first runs, which never write it where
# PYTHONDONTWRITEBYTECODE is set (then every command compiles ~4,000 lines again,
# ~0.1 s); compile it once now, as `pip install` does for a regular install. Python
# still checks each file's timestamp, so an edited source is never run stale.
python3 -m compileall -q refimpl grammar proofs conformance >/dev/null
if [ "${EVTCHN_SPEC_NO_XEN:-0}" != 1 ]; then
  sh conformance/install.sh
fi
echo "evtchn-spec installed: $(command -v evtchn-spec)"
