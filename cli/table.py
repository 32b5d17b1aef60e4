"""`evtchn-spec table`: the binding table, and per-domain guest fragments or headers."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

from evtchn_spec.refimpl.boot import boot
from evtchn_spec.render import table as tbl
from evtchn_spec.render.headers import manifests

from . import output
from .common import (
    EXIT_OK,
    EXIT_VIOLATION,
    UsageError,
    add_tree_arguments,
    command_inputs,
    load_config,
)


def register(sub: Any) -> None:
    p = sub.add_parser("table", help="the binding table")
    add_tree_arguments(p)
    p.add_argument("--format", choices=("text", "json", "csv", "markdown"), default="text")
    p.add_argument("--guest-dt", metavar="DIR",
                   help="also write, per domain, a DT fragment listing its ports")
    p.add_argument("--guest-header", metavar="DIR",
                   help="also write, per domain, a manifest of its ports (--lang)")
    p.add_argument("--lang", choices=("c", "rust", "json", "zephyr"),
                   help="--guest-header's language: c (.h, the default), rust (.rs), json, "
                   "zephyr (a devicetree overlay of /zephyr,user)")
    p.set_defaults(handler=cmd_table)


def cmd_table(args: argparse.Namespace) -> int:
    if args.lang is not None and args.guest_header is None:
        raise UsageError("--lang names the language of --guest-header DIR; give both")
    for directory in (args.guest_dt, args.guest_header):
        if directory is not None:
            output.prepare_directory(directory)
    res = boot(load_config(args), keep_going=True)
    rows = tbl.rows(res)
    if res.failure is not None:
        print(f"evtchn-spec table: Xen would panic ({res.failure.panic}); the table shows "
              "what the walk made, see `check`", file=sys.stderr)
    if args.guest_dt is not None:
        write_guest_fragments(args, tbl.guest_fragments(res, rows))
    if args.guest_header is not None:
        write_guest_fragments(args, manifests(res, rows, args.lang or "c"),
                              args.guest_header)
    renderers: dict[str, Callable[[], str]] = {
        "json": lambda: tbl.to_json(rows, res), "csv": lambda: tbl.to_csv(rows),
        "markdown": lambda: tbl.to_markdown(rows), "text": lambda: tbl.to_text(rows)}
    sys.stdout.write(renderers[args.format]())
    return EXIT_OK if res.failure is None else EXIT_VIOLATION


def write_guest_fragments(args: argparse.Namespace, fragments: dict[str, str],
                          directory: str | None = None) -> None:
    """`table --guest-dt DIR` (or `--guest-header DIR`): each fragment as an output of
    its own (atomic, never over an input), every one checked before the first is
    written; a directory made here is removed again if nothing could be written."""
    inputs = command_inputs(args)
    where = args.guest_dt if directory is None else directory
    made = output.make_directory(where)
    try:
        targets = [(output.prepare(os.path.join(where, name), inputs), text)
                   for name, text in fragments.items()]
        for target, text in targets:
            output.write_bytes(target, text, inputs)
    except BaseException:
        output.remove_directories(made)  # only if still empty
        raise
