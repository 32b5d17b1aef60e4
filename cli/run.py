"""`evtchn-spec run`: a hypercall trace applied to the booted state (spec/trace.md)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from evtchn_spec.refimpl.boot import boot
from evtchn_spec.refimpl.runtime import load_trace, run, to_text

from .common import EXIT_OK, EXIT_VIOLATION, add_tree_arguments, load_config


def register(sub: Any) -> None:
    p = sub.add_parser("run", help="apply a hypercall trace to the booted state")
    add_tree_arguments(p)
    p.add_argument("trace", metavar="TRACE.json", help="the calls (spec/trace.md)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--xsm", choices=("silo", "dummy"), default="silo",
                   help="XSM policy (silo: Debian's 4.17 build; dummy: upstream's default)")
    p.set_defaults(handler=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    calls = load_trace(args.trace)
    res = boot(load_config(args))
    res.state.xsm = args.xsm
    doc = run(res, calls)
    if args.format == "json":
        sys.stdout.write(json.dumps(doc, indent=1) + "\n")
    else:
        sys.stdout.write(to_text(doc))
    return EXIT_OK if res.outcome == "booted" else EXIT_VIOLATION
