"""What every subcommand shares: exit codes, the tree options and how a tree is read,
usage errors, and every output file through output.py (see ARCHITECTURE.md: the
exit codes and the one-line messages are part of the contract)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import BinaryIO

from evtchn_spec.grammar import load
from evtchn_spec.grammar.tree import Tree
from evtchn_spec.refimpl import rules
from evtchn_spec.refimpl.config import Config, xen_profile

from . import output

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


def add_tree_arguments(p: argparse.ArgumentParser) -> None:
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
        # only with --uboot-base: the script reader is 1.6-7 ms (python -X importtime)
        from evtchn_spec.grammar.uboot import load_uboot

        return load_uboot(args.file, args.uboot_base)
    return load(args.file, cpp=args.cpp, include_dirs=args.include_dirs, symbols=symbols)


def command_inputs(args: argparse.Namespace, tree: Tree | None = None) -> list[str]:
    """Every file the command reads, so that no output is ever written over one: the
    tree, the trace, the policy and (once the tree is read) the files it included."""
    names = [getattr(args, k, None) for k in ("file", "trace", "policy", "uboot_base")]
    found = [n for n in names if isinstance(n, str) and n]
    if tree is not None:
        found += tree.sources  # the files the front end read (Tree.sources)
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


def load_config(args: argparse.Namespace) -> Config:
    """The tree, read as the chosen Xen version and dialect would read it."""
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
    known = {r.id.upper(): r.id for r in rules.all_rules()}
    out = []
    for action, flag, rid in getattr(args, "severities", []):
        if rid.upper() not in known:
            raise UsageError(f"{flag} {rid}: unknown rule ID (the IDs are in "
                             "spec/binding.md, e.g. XEN-PEER-ASYMMETRIC)")
        out.append((action, known[rid.upper()]))
    return out
