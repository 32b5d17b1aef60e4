"""The `evtchn-spec xen` subcommand: boot a tree on a real Xen hypervisor under QEMU.

`--xen VERSION` picks the release (4.17 ... 4.22, master: the names `boot --xen`
takes; a point release such as 4.22.0 picks its branch), `--xen-image PATH` the
user's own hypervisor binary, whose version is read from the banner it prints;
`--compare` runs the reference for that release (for --xen-image: the modelled
release nearest to the banner's version, named in the result).

Wiring (cli/xen.py): ``configure_parser`` and ``cmd_xen`` give the parser with
``set_defaults(handler=cmd_xen)``; ``cmd_xen(args) -> int`` runs it.

Exit codes: 0 Xen booted or panicked and the outcome is reported (with
--compare: and the reference agrees); 1 --compare found a difference; 2 the
input could not be read, or QEMU/Xen/the cross compiler is missing (one line
naming what and how to install it); 3 the run timed out before every domain
reported (outcome "incomplete").
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from typing import TYPE_CHECKING, Any

from evtchn_spec.grammar.dtb import write_dtb
from evtchn_spec.grammar.errors import InputError, Span
from evtchn_spec.grammar.uboot import load_uboot
from evtchn_spec.refimpl.config import KNOWN_VERSIONS, xen_profile

if TYPE_CHECKING:
    from . import fdt

EXIT_OK = 0
EXIT_DIFF = 1
EXIT_INPUT = 2
EXIT_UNKNOWN = 3


def nearest_release(version: str) -> tuple[str, str | None]:
    """The modelled release for a banner version ("4.22.0" -> 4.22, "4.23-unstable" ->
    master) and a note when it is not the banner's own branch."""

    head = version.split("-", 1)[0].split(".")
    try:
        key = (int(head[0]), int(head[1]))
    except (IndexError, ValueError):
        return "master", f"banner version {version!r} not understood: compared with master"
    releases = {v: k for k, v in KNOWN_VERSIONS.items() if k != "master"}
    if key in releases:
        return releases[key], None
    newest = max(releases)
    if key > newest:
        return "master", (f"Xen {version} is newer than every modelled release: "
                          "compared with master")
    oldest = min(releases)
    if key < oldest:
        return releases[oldest], (f"Xen {version} is older than every modelled release: "
                                  f"compared with {releases[oldest]}")
    below = max(k for k in releases if k < key)
    return releases[below], f"Xen {version} is not modelled: compared with {releases[below]}"



def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help=".dts or .dtb file")
    p.add_argument("--cpp", action="store_true", help="run the C preprocessor first")
    p.add_argument("-I", dest="include_dirs", action="append", default=[], metavar="DIR")
    p.add_argument("--uboot-base", metavar="BOARD.dtb",
                   help="FILE is a U-Boot script whose fdt commands run over this board DTB")
    p.add_argument("--dialect", choices=("auto", "seed", "xen"), default="auto",
                   help="accepted for symmetry; real Xen only knows its own dialect")
    p.add_argument("--xen", dest="xen_version", default="4.17", metavar="VERSION",
                   help="Xen release to boot: 4.17 or 4.20 (Debian's packages), 4.18, 4.19, "
                        "4.21, 4.22 or master (built with conformance/build-xen.sh)")
    p.add_argument("--xen-image", metavar="PATH",
                   help="boot this hypervisor binary instead (its version is read from the "
                        "banner; --compare uses the nearest modelled release)")
    p.add_argument("--dom0", action="store_true",
                   help="also boot a dom0 (implied when /chosen has a multiboot,kernel module); "
                        "Xen reads /chosen-level evtchn nodes only with a dom0")
    p.add_argument("--add-kernels", action="store_true",
                   help="give every xen,domain node without a multiboot,kernel module one "
                        "(by default Xen sees the modules exactly as written)")
    p.add_argument("--timeout", type=float, default=120.0, metavar="S",
                   help="hard limit for the QEMU run in seconds (default 120)")
    p.add_argument("--compare", action="store_true",
                   help="also run the reference `boot` (with --trace: `run`) and show both "
                        "and every difference")
    p.add_argument("--trace", metavar="TRACE.json",
                   help="runtime calls for the guests to make (see conformance/README.md)")
    p.add_argument("--slot-ms", type=int, default=300, metavar="MS",
                   help="time slot per traced call (default 300 ms)")
    p.add_argument("--format", choices=("json", "text"), default="json")
    p.add_argument("--console", metavar="LOG", help="also write Xen's full console log here")


def resolve_release(version: str) -> str:
    """The release name `--xen VERSION` boots (ValueError for an unknown one)."""

    return xen_profile(version).name


def cmd_xen(args: argparse.Namespace) -> int:
    try:
        release = resolve_release(args.xen_version)
    except ValueError as exc:
        print(f"evtchn-spec xen: --xen: {exc}", file=sys.stderr)
        return EXIT_INPUT
    # the runner, imported here and not at the top: every other subcommand would pay
    # about 20 ms for it (python -X importtime: qemu 14 ms with dtbuild, report and
    # tools; trace 2.4 ms; the comparator 4.3 ms)
    from evtchn_spec.oracle import compare

    from . import dtbuild, fdt, qemu, report, trace
    from .tools import ToolsMissing, find_tools

    try:
        tools = find_tools(release, image=args.xen_image)
    except ToolsMissing as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_INPUT

    if getattr(args, "uboot_base", None):
        raw = write_dtb(load_uboot(args.file, args.uboot_base))
    else:
        raw = dtbuild.compile_source(args.file, cpp=args.cpp, include_dirs=args.include_dirs,
                                     dtc=tools.dtc)
    try:
        user = fdt.parse(raw)
    except fdt.FdtError as exc:
        raise InputError(Span(args.file, 1, 1), f"not a valid DTB: {exc}") from exc
    dom0 = bool(args.dom0) or dtbuild.has_dom0_kernel(user)
    calls: list[trace.Call] = []
    if args.trace:
        calls = trace.load(args.trace)
    commands, nslots = trace.schedule(calls)
    # the hard timeout covers the boot; a trace's slots come on top of it
    timeout = float(args.timeout) + nslots * (args.slot_ms if calls else 0) / 1000
    result = qemu.boot(tools, user, dom0=dom0, timeout=timeout, source=args.file,
                       commands=commands, slot_ms=args.slot_ms if calls else 0, nslots=nslots,
                       add_kernels=args.add_kernels)
    if args.console:
        with open(args.console, "w", encoding="utf-8") as fh:
            fh.write("\n".join(result.console) + "\n")
    build = report.build_json(result.console, release=tools.release, source=tools.xen_source,
                              package=tools.xen_version, image=str(tools.xen_image))
    ref_release: str = release
    note: str | None = None
    if args.xen_image:
        seen = build["banner_version"]
        if seen is None:
            ref_release, note = "4.17", "no Xen banner on the console: compared with 4.17"
        else:
            ref_release, note = nearest_release(seen)
        build["release"] = ref_release
        if note:
            build["release_note"] = note
    boot = report.boot_json(result.console, result.plan, result.reason,
                            xen_version=tools.xen_version, build=build)
    doc: dict[str, Any] = boot
    if calls:
        doc = trace.run_json(result.console, result.plan, boot, calls)
    rc = EXIT_OK if boot["outcome"] in ("booted", "panic") else EXIT_UNKNOWN
    if calls and doc.get("incomplete"):
        # calls and dumps out of order (a loaded host): what it saw is not Xen's answer
        rc = EXIT_UNKNOWN
    if args.compare:
        ref, err = reference(args, result.plan.user_view, trace_path=args.trace,
                             release=ref_release)
        if ref is None:
            diffs = []
        elif calls:
            diffs = compare.run_differences(doc, ref)
        else:
            diffs = compare.differences(boot, ref)
        doc = {"format": 1, "xen": doc, "reference": ref, "reference_release": ref_release,
               "differences": diffs}
        if err:
            doc["reference_error"] = err
            rc = max(rc, EXIT_UNKNOWN)
        elif diffs:
            rc = max(rc, EXIT_DIFF)
    if args.format == "json":
        print(json.dumps(doc, indent=2))
    else:
        print(render_text(doc))
    return rc


def reference(args: argparse.Namespace, view: fdt.Fdt | None = None,
              trace_path: str | None = None, release: str | None = None
              ) -> tuple[dict[str, Any] | None, str | None]:
    """The reference `boot` JSON (or `run` JSON with TRACE_PATH), via the stable CLI.

    With VIEW (the user's tree as Xen saw it: module nodes rewritten by the
    runner) the reference boots exactly that, written out as a DTB; otherwise
    the user's file.
    """
    from . import fdt  # (the runner's DTB reader: see cmd_xen, about 1.4 ms)

    with tempfile.TemporaryDirectory(prefix="evtchn-ref-") as tmp:
        if view is not None:
            path = os.path.join(tmp, "as-booted.dtb")
            with open(path, "wb") as fh:
                fh.write(fdt.serialize(view))
            extra: list[str] = []
        else:
            path = args.file
            extra = ["--cpp"] if args.cpp else []
            for d in args.include_dirs:
                extra += ["-I", d]
        # Real Xen knows only its own dialect, so the reference is asked for that one.
        sub = ["run", path, trace_path] if trace_path else ["boot", path]
        cmd = [sys.executable, "-m", "evtchn_spec.cli", *sub, "--format", "json",
               "--dialect", "xen", "--xen", release or args.xen_version, *extra]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=300)
    try:
        doc = json.loads(proc.stdout)
    except json.JSONDecodeError:
        msg = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return None, f"reference unavailable (exit {proc.returncode}): {msg}"
    if not isinstance(doc, dict):
        return None, "the reference printed something other than a JSON object"
    return doc, None


def render_text(doc: dict[str, Any]) -> str:
    """A short human summary of a boot (or --compare) document."""
    lines: list[str] = []
    if "reference" in doc and "differences" in doc:
        lines.append("== real Xen ==")
        lines.append(render_text(doc["xen"]))
        lines.append("== reference ==")
        lines.append(render_text(doc["reference"]) if doc["reference"] else
                     doc.get("reference_error", "unavailable"))
        lines.append("== differences ==")
        lines.extend(doc["differences"] or ["none"])
        return "\n".join(lines)
    boot = doc.get("initial", doc)
    lines.append(f"outcome: {boot.get('outcome')}")
    if boot.get("outcome") == "panic":
        lines.append(f"error: {boot.get('error')!r}")
        lines.append(f"panic: {boot.get('panic')}")
    for domid, d in (boot.get("domains") or {}).items():
        lines.append(f"d{domid} {d.get('name')}:")
        for p in d.get("ports", []):
            peer = ""
            if "remote_dom" in p:
                peer = f" -> d{p['remote_dom']}" + (f":{p['remote_port']}"
                                                     if "remote_port" in p else "")
            bits = "".join(f" {k}" for k in ("static", "pending", "masked") if p.get(k))
            lines.append(f"  port {p['port']:>4} {p['status']}{peer}{bits}")
    if "calls" in doc:
        for c in doc["calls"]:
            lines.append(f"call d{c['caller']} {c['op']} {c.get('args')} -> rc {c.get('rc')}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (python -m evtchn_spec.conformance.cli FILE ...)."""
    p = argparse.ArgumentParser(prog="evtchn-spec xen")
    configure_parser(p)
    args = p.parse_args(argv)
    try:
        return cmd_xen(args)
    except InputError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_INPUT


if __name__ == "__main__":
    sys.exit(main())
