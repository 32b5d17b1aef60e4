"""`evtchn-spec graph`: the channel topology as a picture (dot, mermaid, svg)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from evtchn_spec.refimpl.boot import boot
from evtchn_spec.render.graph import to_dot, to_mermaid, to_svg

from .common import EXIT_OK, EXIT_VIOLATION, add_tree_arguments, load_config


def register(sub: Any) -> None:
    p = sub.add_parser("graph", help="the channel topology as a picture")
    add_tree_arguments(p)
    p.add_argument("--format", choices=("dot", "mermaid", "svg"), default="dot")
    p.set_defaults(handler=cmd_graph)


def cmd_graph(args: argparse.Namespace) -> int:
    res = boot(load_config(args), keep_going=True)
    render = {"dot": to_dot, "mermaid": to_mermaid, "svg": to_svg}[args.format]
    sys.stdout.write(render(res))
    return EXIT_OK if res.failure is None else EXIT_VIOLATION
