"""The `evtchn-spec` command line (a stable interface: see ARCHITECTURE.md).

Exit codes: 0 holds/succeeded, 1 a rule is violated (or a proof failed),
2 the input could not be read, the command line is wrong or an output (a file or
stdout) cannot be written, 3 the solver answered unknown, 70 an internal error.
Bad input is reported as one line `file:line:col: message` (or `PATH: message`),
never a traceback. Every file written goes through output.py.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, BinaryIO, TextIO, cast

from . import output
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
    """A bad command line that argparse cannot see (exit 2, one line): `PATH: message`
    when it is about a file, else `evtchn-spec: message`."""

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path

    def __str__(self) -> str:
        prefix = "evtchn-spec" if self.path is None else self.path
        return f"{prefix}: {self.args[0]}"


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help=".dts or .dtb file")
    p.add_argument("--cpp", action="store_true",
                   help="run the C preprocessor first (as Linux does)")
    p.add_argument("-I", dest="include_dirs", action="append", default=[], metavar="DIR",
                   help="include directory for /include/ and #include (repeatable)")
    p.add_argument("--dialect", choices=("auto", "seed", "xen"), default="auto")
    p.add_argument("--xen", dest="xen_version", default="4.17", metavar="VERSION",
                   help="the Xen version whose behaviour to model (default 4.17)")
    p.add_argument("--uboot-base", metavar="BOARD.dtb",
                   help="FILE is a U-Boot script (text, or a mkimage -T script image) whose "
                        "fdt commands run over this board DTB (or DTS)")


def load_tree(args: argparse.Namespace, *, symbols: bool = False) -> Tree:
    if getattr(args, "uboot_base", None):
        from .grammar.uboot import load_uboot

        return load_uboot(args.file, args.uboot_base)
    return load(args.file, cpp=args.cpp, include_dirs=args.include_dirs, symbols=symbols)


def command_inputs(args: argparse.Namespace, tree: Tree | None = None) -> list[str]:
    """Every file the command reads, so that no output is ever written over one: the
    tree, the trace, the policy and (once the tree is read) the files it included."""
    names = [getattr(args, k, None) for k in ("file", "trace", "policy", "uboot_base")]
    found = [n for n in names if isinstance(n, str) and n]
    if tree is not None:
        # the front end's list of the source files it read (best effort: a private
        # table of grammar/tree.py; an empty list if it is ever gone)
        from .grammar import tree as tree_module

        found += [f for f in getattr(tree_module, "_FILES", []) if isinstance(f, str)]
    return found


def prepare_output(out: str | None, args: argparse.Namespace) -> output.Target:
    """Check OUT before the work (exit 2 with `OUT: message`, nothing created)."""
    return output.prepare(out, command_inputs(args))


def write_output(target: output.Target, data: bytes | str, args: argparse.Namespace,
                 tree: Tree | None = None) -> None:
    """Write to the prepared OUT (never over an input file) or to stdout."""
    output.write_bytes(target, data, command_inputs(args, tree))


def write_output_stream(target: output.Target, write: Callable[[BinaryIO], object],
                        args: argparse.Namespace, tree: Tree | None = None,
                        seeks: bool = True) -> None:
    """`write_output` for a writer that streams into a binary file: a big output is
    never held in memory whole (where the output cannot seek, a writer that `seeks`
    gets a buffer)."""
    output.write_stream(target, write, command_inputs(args, tree), seeks=seeks)


def cmd_dump(args: argparse.Namespace) -> int:
    from .grammar import dump

    target = prepare_output(args.output, args)
    tree = load_tree(args, symbols=args.symbols)
    for w in tree.warnings:
        print(w, file=sys.stderr)
    if args.format == "dtb":
        from .grammar.dtb import write_dtb_to

        write_output_stream(target, lambda fh: write_dtb_to(tree, fh), args, tree)
    elif args.format == "dts":
        write_output(target, dump.to_dts(tree), args, tree)
    else:
        def write_json(fh: BinaryIO) -> None:
            for chunk in dump.json_chunks(tree):
                fh.write(chunk.encode())

        write_output_stream(target, write_json, args, tree, seeks=False)
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


class _SeverityAction(argparse.Action):
    """-W/-E/--no RULE: kept in command-line order in one list (the last one wins)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        items = list(getattr(namespace, self.dest, None) or [])
        items.append((self.const, option_string or "", str(values)))
        setattr(namespace, self.dest, items)


def add_severity_arguments(p: argparse.ArgumentParser) -> None:
    """dtc-style per-rule severities for every command that renders findings."""
    for flags, action, what in ((("-W",), "warning", "report RULE as a warning"),
                                (("-E",), "error", "report RULE as an error"),
                                (("--no",), "off", "do not report RULE")):
        p.add_argument(*flags, dest="severities", action=_SeverityAction, const=action,
                       metavar="RULE", default=[],
                       help=f"{what} (repeatable; applied after --strict, in order)")


def severity_overrides(args: argparse.Namespace) -> list[tuple[str, str]]:
    """(action, rule ID) pairs; an unknown ID is a usage error naming it (exit 2)."""
    from . import rules

    known = {r.id.upper(): r.id for r in rules.all_rules()}
    out = []
    for action, flag, rid in getattr(args, "severities", []):
        if rid.upper() not in known:
            raise UsageError(f"{flag} {rid}: unknown rule ID (the IDs are in "
                             "spec/binding.md, e.g. XEN-PEER-ASYMMETRIC)")
        out.append((action, known[rid.upper()]))
    return out


def cmd_check(args: argparse.Namespace) -> int:
    from . import report
    from .check import check

    severity_overrides(args)  # refuse an unknown rule before reading anything
    policy = None
    if args.policy:
        from .policy import Policy

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
        from .headers import manifests

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
    p.add_argument("--format", choices=("text", "json", "sarif", "github"), default="text",
                   help="github: workflow commands that annotate a pull request")
    p.add_argument("--strict", action="store_true", help="warnings count as errors")
    add_severity_arguments(p)
    p.add_argument("--policy", metavar="FILE",
                   help="TOML list of the domain pairs allowed to share a channel")
    p.set_defaults(handler=cmd_check)

    p = sub.add_parser("table", help="the binding table")
    _common(p)
    p.add_argument("--format", choices=("text", "json", "csv", "markdown"), default="text")
    p.add_argument("--guest-dt", metavar="DIR",
                   help="also write, per domain, a DT fragment listing its ports")
    p.add_argument("--guest-header", metavar="DIR",
                   help="also write, per domain, a manifest of its ports (--lang)")
    p.add_argument("--lang", choices=("c", "rust", "json", "zephyr"),
                   help="--guest-header's language: c (.h, the default), rust (.rs), json, "
                   "zephyr (a devicetree overlay of /zephyr,user)")
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
    """The command line. Standard output is guarded for the whole run (the parser's
    --help too): a full disk or a closed stdout is one line and exit 2, a broken pipe
    (the reader stopped early, as `| head` does) is quiet and exit 0."""
    output.fill_closed_std_descriptors()
    saved = sys.stdout, sys.stderr
    if sys.stderr is None:  # started with descriptor 2 closed: say nothing, not to stdout
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 (closed below)
    guarded = output.GuardedStdout(sys.stdout)
    sys.stdout = cast(TextIO, guarded)
    try:
        try:
            rc = _run(argv)
            guarded.flush()
            return rc
        except SystemExit as exc:  # argparse: --help, --version, a usage error
            guarded.flush()
            code = exc.code
            return code if isinstance(code, int) else (0 if code is None else EXIT_INPUT)
    except output.StdoutError as exc:
        if saved[0] is sys.__stdout__:
            output.silence_stdout()  # what is still buffered must not fail at exit
        if exc.errno == errno.EPIPE:
            return EXIT_OK
        print(str(exc), file=sys.stderr)
        return EXIT_INPUT
    finally:
        if sys.stderr is not saved[1]:
            sys.stderr.close()
        sys.stdout, sys.stderr = saved


def _run(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except (InputError, output.OutputError) as exc:
        if isinstance(exc, output.StdoutError):
            raise
        print(str(exc), file=sys.stderr)
        return EXIT_INPUT
    except UsageError as exc:
        print(str(exc), file=sys.stderr)
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
