"""`evtchn-spec diff --impl CMD`: another implementation against the oracle
(spec/oracle.md, "The diff protocol")."""

from __future__ import annotations

import os
import sys
from typing import Any

from evtchn_spec.oracle.common import RANDOM_SEED, ImplNotRunnable, VectorsError, error_line


def register(sub: Any) -> None:
    p = sub.add_parser("diff", help="differential testing of another implementation "
                       "against the oracle (spec/oracle.md)")
    p.add_argument("--impl", required=True, metavar="CMD",
                   help='the implementation under test, e.g. "my-xen-model" (shell words)')
    p.add_argument("--vectors", metavar="DIR", help="a directory written by `vectors`")
    p.add_argument("files", nargs="*", metavar="FILE", help=".dts/.dtb trees to compare on")
    p.add_argument("--random", type=int, default=0, metavar="N",
                   help="also compare on N generated configs")
    p.add_argument("--seed", type=int, default=RANDOM_SEED)
    p.add_argument("--suite", action="append", metavar="NAME",
                   help="with --vectors, only this suite (repeatable)")
    p.add_argument("--timeout", type=float, default=30.0, metavar="S",
                   help="seconds per call of the implementation (default 30)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--dialect", choices=("auto", "seed", "xen"), default="auto",
                   help="dialect for FILE cases")
    p.add_argument("--xen", dest="xen_version", default="4.17", metavar="VERSION")
    p.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1,
                   help="calls of the implementation run at once")
    p.set_defaults(handler=cmd_diff, file="diff")


def cmd_diff(args: Any) -> int:
    # here, not at the top: every `evtchn-spec` run builds the parser, and the harness
    # loads the vector generator and the comparator (python -X importtime: 16-23 ms)
    from evtchn_spec.oracle.diff import main_diff

    try:
        code, text = main_diff(args.impl, args.vectors, args.files, args.random, args.seed,
                               args.timeout, args.format, args.suite, args.dialect,
                               args.xen_version, args.jobs)
    except VectorsError as exc:
        print(error_line("diff", exc), file=sys.stderr)
        return 2
    except ImplNotRunnable as exc:
        print(f"evtchn-spec diff: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(text)
    return code
