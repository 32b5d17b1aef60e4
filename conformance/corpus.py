"""Regenerate the conformance corpus: record what real Xen does with every case.

    python -m evtchn_spec.conformance.corpus [DIR] [CASE ...]

DIR defaults to tests/data/xen.  For every CASE.dts there (or only the named
cases) it boots the tree on Xen under QEMU and writes CASE.json (the boot
JSON); when CASE.trace.json exists it also runs that trace and writes
CASE.run.json.  A case boots a dom0 when its /chosen has a multiboot,kernel
module (the runner replaces every module node with its own guest).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from ..grammar.errors import InputError
from . import dtbuild, fdt, qemu, report, trace
from .tools import Tools, find_tools

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "tests" / "data" / "xen"
TIMEOUT = 120.0
SLOT_MS = 300


def run_case(tools: Tools, dts: Path) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(boot JSON, run JSON or None) for one case file."""
    user = fdt.parse(dtbuild.compile_source(str(dts), dtc=tools.dtc))
    dom0 = dtbuild.has_dom0_kernel(user)
    res = qemu.boot(tools, user, dom0=dom0, timeout=TIMEOUT, source=str(dts))
    boot = report.boot_json(res.console, res.plan, res.reason, xen_version=tools.xen_version)
    tpath = dts.with_name(dts.stem + ".trace.json")
    run: dict[str, Any] | None = None
    if tpath.is_file():
        calls = trace.load(str(tpath))
        commands, nslots = trace.schedule(calls)
        tres = qemu.boot(tools, user, dom0=dom0, timeout=TIMEOUT + nslots * SLOT_MS / 1000,
                         source=str(dts), commands=commands, slot_ms=SLOT_MS, nslots=nslots)
        tboot = report.boot_json(tres.console, tres.plan, tres.reason,
                                 xen_version=tools.xen_version)
        run = trace.run_json(tres.console, tres.plan, tboot, calls)
    return boot, run


def dump(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=1) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    folder = Path(args.pop(0)) if args and Path(args[0]).is_dir() else DEFAULT_DIR
    wanted = set(args)
    tools = find_tools()
    cases = sorted(p for p in folder.glob("*.dts") if not wanted or p.stem in wanted)
    failed = 0
    for dts in cases:
        try:
            boot, run = run_case(tools, dts)
        except InputError as exc:
            print(f"{dts.stem}: not recorded: {exc}", flush=True)
            failed += 1
            continue
        dts.with_suffix(".json").write_text(dump(boot))
        line = f"{dts.stem}: {boot['outcome']}"
        if boot["outcome"] == "panic":
            line += f" ({boot.get('error')!r})"
        if run is not None:
            dts.with_name(dts.stem + ".run.json").write_text(dump(run))
            line += f", trace of {len(run['calls'])} calls"
        print(line, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
