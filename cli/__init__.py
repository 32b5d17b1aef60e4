"""The `evtchn-spec` command line (a stable interface: see ARCHITECTURE.md).

One module per subcommand, each with `register(subparsers)`; common.py holds what
they share (exit codes, the tree options, loading, usage errors) and output.py every
file written. Exit codes: 0 holds/succeeded, 1 a rule is violated (or a proof
failed), 2 the input could not be read, the command line is wrong or an output (a
file or stdout) cannot be written, 3 the solver answered unknown, 70 an internal
error. Bad input is reported as one line `file:line:col: message` (or `PATH:
message`), never a traceback.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys
from collections.abc import Sequence
from typing import TextIO, cast

from evtchn_spec import __version__
from evtchn_spec.grammar.errors import InputError

from . import output
from .common import EXIT_INPUT, EXIT_INTERNAL, EXIT_OK, Handler, UsageError

# The subcommands, in the order `--help` lists them: each is the module cli/NAME.py
# with `register(subparsers)`. A run imports only its own subcommand's module (all of
# them for `--help` or a name that is none of these): importing all eleven, with the
# model, renderers and runner they need, cost `check` on a small tree 35 ms of its
# 185 ms of CPU.
SUBCOMMANDS = ("dump", "check", "table", "boot", "graph", "prove", "fix", "run", "xen",
               "vectors", "diff")


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; given the command line, with only the subcommand it names."""
    parser = argparse.ArgumentParser(
        prog="evtchn-spec",
        description="Specification, reference implementation and proofs of Xen static "
        "event channels.",
    )
    parser.add_argument("--version", action="version", version=f"evtchn-spec {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    words = [a for a in (sys.argv[1:] if argv is None else argv) if not a.startswith("-")]
    named = words[0] if words and words[0] in SUBCOMMANDS else None
    for name in SUBCOMMANDS:
        if named in (None, name):
            importlib.import_module(f"{__name__}.{name}").register(sub)
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
    parser = build_parser(argv)
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

