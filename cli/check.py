"""`evtchn-spec check`: every binding rule, with locations and fix hints."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from evtchn_spec.refimpl.check import check
from evtchn_spec.render import report

from .common import (
    EXIT_OK,
    EXIT_VIOLATION,
    add_severity_arguments,
    add_tree_arguments,
    load_config,
    severity_overrides,
)


def register(sub: Any) -> None:
    p = sub.add_parser("check", help="all binding rules, with locations and fix hints")
    add_tree_arguments(p)
    p.add_argument("--format", choices=("text", "json", "sarif", "github"), default="text",
                   help="github: workflow commands that annotate a pull request")
    p.add_argument("--strict", action="store_true", help="warnings count as errors")
    add_severity_arguments(p)
    p.add_argument("--policy", metavar="FILE",
                   help="TOML list of the domain pairs allowed to share a channel")
    p.set_defaults(handler=cmd_check)


def cmd_check(args: argparse.Namespace) -> int:
    severity_overrides(args)  # refuse an unknown rule before reading anything
    policy = None
    if args.policy:
        # only with --policy: the policy reader and tomllib are 5-10 ms (python -X
        # importtime), a tenth of `check` on a small tree
        from evtchn_spec.refimpl.policy import Policy

        policy = Policy.load(args.policy)
    result = check(load_config(args), policy=policy, strict=args.strict,
                   overrides=severity_overrides(args))
    if args.format == "json":
        sys.stdout.write(report.to_json(result))
    elif args.format == "sarif":
        sys.stdout.write(report.to_sarif(result))
    elif args.format == "github":
        sys.stdout.write(report.to_github(result))
    else:
        sys.stdout.writelines(report.text_lines(result, colour=report.use_colour(sys.stdout)))
    return EXIT_VIOLATION if result.errors else EXIT_OK
