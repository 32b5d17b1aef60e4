"""`evtchn-spec boot`: the reference boot, what Xen would do with the tree."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from evtchn_spec.refimpl.boot import boot, to_text
from evtchn_spec.render.json_stream import write_json

from .common import EXIT_OK, EXIT_VIOLATION, add_tree_arguments, load_config


def register(sub: Any) -> None:
    p = sub.add_parser("boot", help="the reference boot: what Xen would do")
    add_tree_arguments(p)
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(handler=cmd_boot)


def cmd_boot(args: argparse.Namespace) -> int:
    res = boot(load_config(args), trace=args.format == "text")
    if args.format == "json":
        write_json(sys.stdout, res.json_head(), "domains", res.json_domains())
    else:
        sys.stdout.write(to_text(res))
    return EXIT_OK if res.outcome == "booted" else EXIT_VIOLATION
