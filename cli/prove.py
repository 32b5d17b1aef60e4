"""`evtchn-spec prove`: Z3 certification of every rule (spec/proofs.md).

Exit codes as ARCHITECTURE.md: 0 proved, 1 counterexample, 2 bad input,
3 unknown (a timeout is never reported as proved)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from evtchn_spec.proofs.report import prove_config, public, to_text

from .common import (
    EXIT_OK,
    EXIT_UNKNOWN,
    EXIT_VIOLATION,
    UsageError,
    add_tree_arguments,
    load_config,
    prepare_output,
    write_output_stream,
)

# Z3 takes its timeout as an unsigned 32-bit count of milliseconds: a longer limit
# (about 49.7 days) is that one; a shorter one than 1 ms is 1 ms (0 would mean none).
TIMEOUT_MAX_MS = 2**32 - 1
STEPS_MAX = 256  # --steps: each step unrolls the whole transition relation once more


def register(sub: Any) -> None:
    p = sub.add_parser("prove", help="Z3 certification of every rule (spec/proofs.md)")
    add_tree_arguments(p)
    add_prove_arguments(p)
    p.set_defaults(handler=cmd_prove)


def solver_seconds(text: str) -> float:
    """`--timeout`: positive finite seconds, else a usage error (exit 2)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(
            f"{text!r}: the limit must be a positive, finite number of seconds "
            "(leave --timeout out for no limit)")
    return min(max(value, 0.001), TIMEOUT_MAX_MS / 1000)


def step_count(text: str) -> int:
    """`--steps`: a whole number of calls from 1 to STEPS_MAX, else a usage error."""
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of steps") from None
    if not 1 <= value <= STEPS_MAX:
        raise argparse.ArgumentTypeError(f"{text!r}: the bound must be from 1 to {STEPS_MAX}")
    return value


def add_prove_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--certificate", metavar="OUT.smt2",
                   help="write every query as a self-contained SMT-LIB 2 script")
    p.add_argument("--timeout", type=solver_seconds, metavar="SECONDS",
                   help="per-query solver limit, positive seconds (default: none; 60 s for "
                   "--invariants and --steps; at most 2**32-1 ms, Z3's largest); a timeout "
                   "is exit 3, never proved")
    p.add_argument("--explain", action="store_true",
                   help="also give, for every proved query, the facts its proof needs")
    p.add_argument("--orders", choices=("auto", "on", "off"), default="auto",
                   help="universal claims over /chosen orders and Xen versions "
                   "(auto: for configs of up to 40 endpoints)")
    # run-time claims (proofs/invariants.py, proofs/attack.py)
    p.add_argument("--invariants", action="store_true",
                   help="induction proofs of the run-time invariants (spec/proofs-runtime.md)")
    p.add_argument("--steps", type=step_count, metavar="K",
                   help=f"bounded search for an attack of at most K calls, 1 <= K <= "
                   f"{STEPS_MAX} (needs --policy)")
    p.add_argument("--policy", metavar="POLICY.toml", help="allowed domain pairs")
    p.add_argument("--xsm", choices=("silo", "dummy", "both"), default="silo")


def cmd_prove(args: argparse.Namespace) -> int:
    check_dialect(args)
    if args.steps is not None and not args.policy:
        raise UsageError("--steps needs --policy POLICY.toml")
    target = prepare_output(args.certificate, args) if args.certificate is not None \
        else None
    cfg = load_config(args)
    if args.invariants or args.steps is not None:
        from evtchn_spec.proofs import attack  # (imports z3: see cli/fix.py)

        return attack.cmd(args, cfg)
    timeout = args.timeout or 0.0
    if target is not None:
        docs: list[dict[str, Any]] = []
        write_output_stream(target, lambda fh: docs.append(
            prove_config(cfg, timeout, args.explain, args.orders, fh)), args, cfg.tree)
        doc = docs[0]
    else:
        doc = prove_config(cfg, timeout, args.explain, args.orders)
    if args.format == "json":
        sys.stdout.write(json.dumps(public(doc), indent=1) + "\n")
    else:
        sys.stdout.write(to_text(doc))
    return status_exit(doc["verdict"])


def check_dialect(args: argparse.Namespace) -> None:
    if args.dialect == "seed":
        raise UsageError("prove/fix cover the xen dialect, not --dialect seed (seed nodes "
                         "are reported under --dialect auto as SEED-UNMERGED); use "
                         "`check --dialect seed`", path=args.file)


def status_exit(status: str) -> int:
    return {"proved": EXIT_OK, "counterexample": EXIT_VIOLATION}.get(status, EXIT_UNKNOWN)
