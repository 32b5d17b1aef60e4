"""The `evtchn-spec` command line (a stable interface: see ARCHITECTURE.md).

Exit codes: 0 holds/succeeded, 1 a rule is violated (or a proof failed),
2 the input could not be read, 3 the solver answered unknown.
Bad input is reported as one line `file:line:col: message`, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from .grammar import load
from .grammar.errors import InputError
from .grammar.tree import Tree

EXIT_OK = 0
EXIT_VIOLATION = 1
EXIT_INPUT = 2
EXIT_UNKNOWN = 3
EXIT_INTERNAL = 70

Handler = Callable[[argparse.Namespace], int]


class UsageError(Exception):
    """A bad command line that argparse cannot see (exit 2, one line)."""


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help=".dts or .dtb file")
    p.add_argument("--cpp", action="store_true",
                   help="run the C preprocessor first (as Linux does)")
    p.add_argument("-I", dest="include_dirs", action="append", default=[], metavar="DIR",
                   help="include directory for /include/ and #include (repeatable)")
    p.add_argument("--dialect", choices=("auto", "seed", "xen"), default="auto")
    p.add_argument("--xen", dest="xen_version", default="4.17", metavar="VERSION",
                   help="the Xen version whose behaviour to model (default 4.17)")


def load_tree(args: argparse.Namespace, *, symbols: bool = False) -> Tree:
    return load(args.file, cpp=args.cpp, include_dirs=args.include_dirs, symbols=symbols)


def write_output(out: str | None, data: bytes | str) -> None:
    """Write to OUT (never over an input file) or to stdout."""
    raw = data.encode() if isinstance(data, str) else data
    if out is None or out == "-":
        sys.stdout.buffer.write(raw)
        sys.stdout.flush()
        return
    tmp = Path(out + ".tmp")
    tmp.write_bytes(raw)
    tmp.replace(out)


def _guard_output(args: argparse.Namespace) -> None:
    out = getattr(args, "output", None)
    if out and out != "-" and os.path.exists(out) and os.path.samefile(out, args.file):
        raise UsageError(f"{out}: refusing to overwrite the input file")


def cmd_dump(args: argparse.Namespace) -> int:
    from .grammar import dump

    _guard_output(args)
    tree = load_tree(args, symbols=args.symbols)
    for w in tree.warnings:
        print(w, file=sys.stderr)
    if args.format == "dtb":
        from .grammar.dtb import write_dtb

        write_output(args.output, write_dtb(tree))
    elif args.format == "dts":
        write_output(args.output, dump.to_dts(tree))
    else:
        write_output(args.output, dump.to_json_text(tree))
    return EXIT_OK


def _not_yet(issue: int) -> Handler:
    def handler(args: argparse.Namespace) -> int:
        print(f"evtchn-spec {args.command}: not available in this version yet "
              f"(tracked as issue {issue})", file=sys.stderr)
        return EXIT_INPUT

    return handler


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evtchn-spec",
        description="Specification, reference implementation and proofs of Xen static "
        "event channels.",
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"evtchn-spec {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")

    p = sub.add_parser("dump", help="the fully resolved tree as json, dts or dtb")
    _common(p)
    p.add_argument("--format", choices=("json", "dts", "dtb"), default="json")
    p.add_argument("-o", "--output", metavar="OUT", help="write here instead of stdout")
    p.add_argument("-@", "--symbols", dest="symbols", action="store_true",
                   help="add the __symbols__ node, as dtc -@ does")
    p.set_defaults(handler=cmd_dump)

    planned = {
        "check": ("all binding rules, with locations and fix hints", 3),
        "table": ("the binding table", 3),
        "boot": ("the reference boot: what Xen would do", 3),
        "xen": ("boot the tree on the real Xen 4.17 under QEMU", 4),
        "run": ("apply a hypercall trace to the booted state", 5),
        "prove": ("Z3 certification", 6),
        "fix": ("minimal repair by Z3", 6),
        "vectors": ("conformance test vectors", 6),
        "diff": ("differential testing of another implementation", 6),
        "graph": ("the channel topology as a picture", 3),
    }
    for name, (help_text, issue) in planned.items():
        p = sub.add_parser(name, help=help_text)
        p.add_argument("rest", nargs=argparse.REMAINDER)
        p.set_defaults(handler=_not_yet(issue))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except InputError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_INPUT
    except UsageError as exc:
        print(f"evtchn-spec: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except BrokenPipeError:
        return EXIT_OK
    except KeyboardInterrupt:
        return 130
    except RecursionError:
        print(f"{args.file}: input nested too deeply to process", file=sys.stderr)
        return EXIT_INPUT
    except MemoryError:
        print(f"{args.file}: input too large to process in memory", file=sys.stderr)
        return EXIT_INPUT
    except Exception as exc:  # the last line of defence: never a raw traceback
        if os.environ.get("EVTCHN_SPEC_DEBUG"):
            raise
        print(f"evtchn-spec: internal error: {type(exc).__name__}: {exc} "
              "(please report; set EVTCHN_SPEC_DEBUG=1 for a traceback)", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
