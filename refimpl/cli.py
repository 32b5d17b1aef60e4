"""The `evtchn-spec` command line (a stable interface: see ARCHITECTURE.md).

Exit codes: 0 holds/succeeded, 1 a rule is violated (or a proof failed),
2 the input could not be read, 3 the solver answered unknown.
Bad input is reported as one line `file:line:col: message`, never a traceback.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from .grammar import load
from .grammar.errors import InputError
from .grammar.tree import Tree

if TYPE_CHECKING:
    from .config import Config

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
    write_output_stream(out, lambda fh: fh.write(raw), seeks=False)


def write_output_stream(out: str | None, write: Callable[[BinaryIO], object],
                        seeks: bool = True) -> None:
    """`write_output` for a writer that streams into a binary file: a big output is
    never held in memory whole (stdout, which cannot seek, gets a buffer if the writer
    `seeks`)."""
    if out is None or out == "-":
        if not seeks:
            write(sys.stdout.buffer)
            sys.stdout.flush()
            return
        buf = io.BytesIO()
        write(buf)
        sys.stdout.buffer.write(buf.getbuffer())
        sys.stdout.flush()
        return
    tmp = Path(out + ".tmp")
    try:
        with open(tmp, "wb") as fh:
            write(fh)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
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
        from .grammar.dtb import write_dtb_to

        write_output_stream(args.output, lambda fh: write_dtb_to(tree, fh))
    elif args.format == "dts":
        write_output(args.output, dump.to_dts(tree))
    else:
        def write_json(fh: BinaryIO) -> None:
            for chunk in dump.json_chunks(tree):
                fh.write(chunk.encode())

        write_output_stream(args.output, write_json, seeks=False)
    return EXIT_OK


def load_config(args: argparse.Namespace) -> Config:
    """The tree, read as the chosen Xen version and dialect would read it."""
    from .config import Config, xen_profile

    try:
        profile = xen_profile(args.xen_version)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    tree = load_tree(args)
    for w in tree.warnings:
        print(w, file=sys.stderr)
    return Config.from_tree(tree, profile, args.dialect)


def cmd_check(args: argparse.Namespace) -> int:
    from . import report
    from .check import check

    policy = None
    if args.policy:
        from .policy import Policy

        policy = Policy.load(args.policy)
    result = check(load_config(args), policy=policy, strict=args.strict)
    if args.format == "json":
        sys.stdout.write(report.to_json(result))
    elif args.format == "sarif":
        sys.stdout.write(report.to_sarif(result))
    else:
        sys.stdout.write(report.to_text(result, colour=report.use_colour(sys.stdout)))
    return EXIT_VIOLATION if result.errors else EXIT_OK


def cmd_boot(args: argparse.Namespace) -> int:
    import json

    from .boot import boot, to_text

    res = boot(load_config(args), trace=args.format == "text")
    if args.format == "json":
        sys.stdout.write(json.dumps(res.to_json(), indent=2) + "\n")
    else:
        sys.stdout.write(to_text(res))
    return EXIT_OK if res.outcome == "booted" else EXIT_VIOLATION


def cmd_table(args: argparse.Namespace) -> int:
    from . import table as tbl
    from .boot import boot

    res = boot(load_config(args), keep_going=True)
    rows = tbl.rows(res)
    if res.failure is not None:
        print(f"evtchn-spec table: Xen would panic ({res.failure.panic}); the table shows "
              "what the walk made, see `check`", file=sys.stderr)
    if args.guest_dt:
        out = Path(args.guest_dt)
        out.mkdir(parents=True, exist_ok=True)
        for name, text in tbl.guest_fragments(res, rows).items():
            target = out / name
            if target.exists() and target.samefile(args.file):
                raise UsageError(f"{target}: refusing to overwrite the input file")
            write_output(str(target), text)
    renderers: dict[str, Callable[[], str]] = {
        "json": lambda: tbl.to_json(rows, res), "csv": lambda: tbl.to_csv(rows),
        "markdown": lambda: tbl.to_markdown(rows), "text": lambda: tbl.to_text(rows)}
    sys.stdout.write(renderers[args.format]())
    return EXIT_OK if res.failure is None else EXIT_VIOLATION


def cmd_graph(args: argparse.Namespace) -> int:
    from .boot import boot
    from .graph import to_dot, to_mermaid, to_svg

    res = boot(load_config(args), keep_going=True)
    render = {"dot": to_dot, "mermaid": to_mermaid, "svg": to_svg}[args.format]
    sys.stdout.write(render(res))
    return EXIT_OK if res.failure is None else EXIT_VIOLATION


def cmd_run(args: argparse.Namespace) -> int:
    import json

    from .boot import boot
    from .runtime import load_trace, run, to_text

    calls = load_trace(args.trace)
    res = boot(load_config(args))
    res.state.xsm = args.xsm
    doc = run(res, calls)
    if args.format == "json":
        sys.stdout.write(json.dumps(doc, indent=1) + "\n")
    else:
        sys.stdout.write(to_text(doc))
    return EXIT_OK if res.outcome == "booted" else EXIT_VIOLATION


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

    p = sub.add_parser("check", help="all binding rules, with locations and fix hints")
    _common(p)
    p.add_argument("--format", choices=("text", "json", "sarif"), default="text")
    p.add_argument("--strict", action="store_true", help="warnings count as errors")
    p.add_argument("--policy", metavar="FILE",
                   help="TOML list of the domain pairs allowed to share a channel")
    p.set_defaults(handler=cmd_check)

    p = sub.add_parser("table", help="the binding table")
    _common(p)
    p.add_argument("--format", choices=("text", "json", "csv", "markdown"), default="text")
    p.add_argument("--guest-dt", metavar="DIR",
                   help="also write, per domain, a DT fragment listing its ports")
    p.set_defaults(handler=cmd_table)

    p = sub.add_parser("boot", help="the reference boot: what Xen would do")
    _common(p)
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(handler=cmd_boot)

    p = sub.add_parser("graph", help="the channel topology as a picture")
    _common(p)
    p.add_argument("--format", choices=("dot", "mermaid", "svg"), default="dot")
    p.set_defaults(handler=cmd_graph)

    from .proofs.cli import add_fix_arguments, add_prove_arguments, cmd_fix, cmd_prove

    p = sub.add_parser("prove", help="Z3 certification of every rule (spec/proofs.md)")
    _common(p)
    add_prove_arguments(p)
    p.set_defaults(handler=cmd_prove)

    p = sub.add_parser("fix", help="the fewest port changes that certify, as DTS (Z3)")
    _common(p)
    add_fix_arguments(p)
    p.set_defaults(handler=cmd_fix)

    p = sub.add_parser("run", help="apply a hypercall trace to the booted state")
    _common(p)
    p.add_argument("trace", metavar="TRACE.json", help="the calls (spec/trace.md)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--xsm", choices=("silo", "dummy"), default="silo",
                   help="XSM policy (silo: Debian's 4.17 build; dummy: upstream's default)")
    p.set_defaults(handler=cmd_run)

    from .conformance.cli import add_xen_subcommand

    add_xen_subcommand(sub)

    from .differential import add_oracle_subcommands

    add_oracle_subcommands(sub)  # vectors, diff (spec/oracle.md)
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
        print(f"{getattr(args, 'file', 'input')}: input nested too deeply to process",
              file=sys.stderr)
        return EXIT_INPUT
    except MemoryError:
        print(f"{getattr(args, 'file', 'input')}: input too large to process in memory",
              file=sys.stderr)
        return EXIT_INPUT
    except Exception as exc:  # the last line of defence: never a raw traceback
        if os.environ.get("EVTCHN_SPEC_DEBUG"):
            raise
        print(f"evtchn-spec: internal error: {type(exc).__name__}: {exc} "
              "(please report; set EVTCHN_SPEC_DEBUG=1 for a traceback)", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
