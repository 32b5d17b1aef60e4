#!/usr/bin/env bash
# Installs what evtchn-spec needs on Debian 12 / Ubuntu: dtc (the reference for DTS
# syntax and for the cpp-free tests) and the Python package with its test extras.
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
echo "evtchn-spec installed: $(command -v evtchn-spec)"
