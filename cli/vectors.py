"""`evtchn-spec vectors DIR`: conformance vectors for other implementations
(spec/oracle.md): the built-in suites, or vectors for the user's own trees."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from evtchn_spec.oracle.common import RANDOM_CASES, RANDOM_SEED, VectorsError, error_line


def register(sub: Any) -> None:
    p = sub.add_parser(
        "vectors", help="conformance test vectors for other implementations (spec/oracle.md)")
    p.add_argument("dir", metavar="DIR", help="output directory (new, empty, or earlier vectors)")
    p.add_argument("--from", dest="sources", action="append", default=[],
                   metavar="FILE_OR_DIR", help="vectors for these .dts/.dtb files (repeatable; "
                   "a sibling NAME.trace.json adds a run)")
    p.add_argument("--suite", action="append", metavar="NAME",
                   help="only this built-in suite (repeatable: xen, runtime, rules, random); "
                   "with --from, the suite's name (default user)")
    p.add_argument("--random", type=int, default=RANDOM_CASES, metavar="N",
                   help=f"cases in the random suite (default {RANDOM_CASES})")
    p.add_argument("--seed", type=int, default=RANDOM_SEED,
                   help=f"seed of the random suite (default {RANDOM_SEED})")
    p.add_argument("--dialect", choices=("auto", "seed", "xen"), default="auto",
                   help="dialect recorded for --from cases")
    p.add_argument("--xen", dest="xen_version", default="4.17", metavar="VERSION")
    p.set_defaults(handler=cmd_vectors, file="vectors")



def cmd_vectors(args: Any) -> int:
    # here, not at the top: every `evtchn-spec` run builds the parser, and `dump` must not
    # load the generator (tests/test_dump_cli.py); python -X importtime: 7-12 ms
    from evtchn_spec.oracle.vectors import (
        BUILTIN_SUITES,
        builtin_suites,
        prepare_dir,
        user_suite,
        write_suites,
    )

    def warn(msg: str) -> None:
        print(f"evtchn-spec vectors: {msg}", file=sys.stderr)

    try:
        prepare_dir(Path(args.dir))  # refuse before any work
        if args.sources:
            suites = user_suite(args.sources, (args.suite or ["user"])[0], args.dialect,
                                args.xen_version)
        else:
            suites = builtin_suites(args.suite or list(BUILTIN_SUITES), warn,
                                    args.random, args.seed)
        index = write_suites(Path(args.dir), suites)
    except VectorsError as exc:
        print(error_line("vectors", exc), file=sys.stderr)
        return 2
    counts = ", ".join(f"{k} {v}" for k, v in index["suites"].items())
    print(f"{args.dir}: {len(index['cases'])} vectors ({counts})", file=sys.stderr)
    return 0
