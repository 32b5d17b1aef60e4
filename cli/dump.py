"""`evtchn-spec dump`: the fully resolved tree as JSON, DTS or DTB (dtc's bytes)."""

from __future__ import annotations

import argparse
import sys
from typing import Any, BinaryIO

from evtchn_spec.grammar import dump
from evtchn_spec.grammar.dtb import write_dtb_to

from .common import (
    EXIT_OK,
    add_tree_arguments,
    load_tree,
    prepare_output,
    write_output,
    write_output_stream,
)


def register(sub: Any) -> None:
    p = sub.add_parser("dump", help="the fully resolved tree as json, dts or dtb")
    add_tree_arguments(p)
    p.add_argument("--format", choices=("json", "dts", "dtb"), default="json")
    p.add_argument("-o", "--output", metavar="OUT", help="write here instead of stdout")
    p.add_argument("-@", "--symbols", dest="symbols", action="store_true",
                   help="add the __symbols__ node, as dtc -@ does")
    p.set_defaults(handler=cmd_dump)


def cmd_dump(args: argparse.Namespace) -> int:
    target = prepare_output(args.output, args)
    tree = load_tree(args, symbols=args.symbols)
    for w in tree.warnings:
        print(w, file=sys.stderr)
    if args.format == "dtb":
        write_output_stream(target, lambda fh: write_dtb_to(tree, fh), args, tree)
    elif args.format == "dts":
        write_output(target, dump.to_dts(tree), args, tree)
    else:
        def write_json(fh: BinaryIO) -> None:
            for chunk in dump.json_chunks(tree):
                fh.write(chunk.encode())

        write_output_stream(target, write_json, args, tree, seeks=False)
    return EXIT_OK
