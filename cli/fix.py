"""`evtchn-spec fix`: the fewest port changes that make the config certify, as DTS
or as a unified diff (proofs/repair.py). Exit 0 fixed or nothing to fix, 1 no repair
exists, 2 bad input, 3 unknown (nothing written)."""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path
from typing import Any

from .common import (
    EXIT_INPUT,
    EXIT_OK,
    EXIT_UNKNOWN,
    EXIT_VIOLATION,
    add_tree_arguments,
    load_config,
    prepare_output,
    write_output,
)
from .prove import check_dialect, solver_seconds


def register(sub: Any) -> None:
    p = sub.add_parser("fix", help="the fewest port changes that certify, as DTS (Z3)")
    add_tree_arguments(p)
    add_fix_arguments(p)
    p.set_defaults(handler=cmd_fix)


def add_fix_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", metavar="FIXED.dts",
                   help="write the repaired DTS here (default: stdout); never the input")
    p.add_argument("--diff", action="store_true",
                   help="print a unified diff (--- a/FILE, +++ b/FILE) of the repair "
                   "instead of the DTS (with -o, the diff is what is written there)")
    p.add_argument("--timeout", type=solver_seconds, metavar="SECONDS",
                   help="per-query solver limit, positive seconds (default: none); a "
                   "timeout is exit 3, nothing written")


def unified_diff(path: str, fixed: str) -> str:
    """`fix --diff`: the repair as a patch of `path` (`patch -p1` applies it from the
    directory the path is relative to); empty when nothing changes."""
    old = Path(path).read_text(encoding="utf-8")
    name = path.lstrip("/")
    while name.startswith("./"):
        name = name[2:].lstrip("/")
    lines = difflib.unified_diff(old.splitlines(keepends=True),
                                 fixed.splitlines(keepends=True),
                                 fromfile=f"a/{name}", tofile=f"b/{name}")
    out = []
    for line in lines:
        out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out)


def cmd_fix(args: argparse.Namespace) -> int:
    check_dialect(args)
    target = prepare_output(args.output, args)
    # z3 is imported here, not at the top: it takes 50-70 ms (python -X importtime),
    # which every other subcommand would pay at start-up
    from evtchn_spec.proofs.repair import repair

    cfg = load_config(args)
    res = repair(cfg, args.timeout or 0.0)
    if res.text is not None and res.status not in ("unknown", "unfixable"):
        # written before the summary: a failed write is then the one line said
        write_output(target, unified_diff(cfg.tree.source, res.text) if args.diff
                     else res.text, args, cfg.tree)
    for line in res.summary:
        print(line, file=sys.stderr)
    if res.status == "unknown":
        return EXIT_UNKNOWN
    if res.status == "unfixable":
        return EXIT_VIOLATION
    return EXIT_OK if res.status in ("fixed", "ok") else EXIT_INPUT
