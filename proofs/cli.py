"""`evtchn-spec prove` and `evtchn-spec fix` (wired in refimpl/cli.py).

prove: every obligation of spec/proofs.md with its verdict and time, the
counterexamples mapped to DTS places, optionally the certificate (SMT-LIB 2) and
the universal claims over /chosen orders and Xen versions (orders.py).
fix: the fewest port changes that make the config certify (repair.py).
Exit codes as ARCHITECTURE.md: 0 proved, 1 counterexample, 2 bad input,
3 unknown (a timeout is never reported as proved).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Iterator
from typing import Any, BinaryIO

from ..cli import (
    EXIT_INPUT,
    EXIT_OK,
    EXIT_UNKNOWN,
    EXIT_VIOLATION,
    UsageError,
    load_config,
    prepare_output,
    write_output,
    write_output_stream,
)

FORMAT = 1
NOT_COVERED = ("DOM-MODULE-REG", "DOM-NO-KERNEL", "DOM-DIRECT-MAP", "DOM-CPUS",
               "DOM-MEMORY", "DOM-KERNEL", "DOM-CAPS")


# Z3 takes its timeout as an unsigned 32-bit count of milliseconds: a longer limit
# (about 49.7 days) is that one; a shorter one than 1 ms is 1 ms (0 would mean none).
TIMEOUT_MAX_MS = 2**32 - 1
STEPS_MAX = 256  # --steps: each step unrolls the whole transition relation once more


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


def add_fix_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", metavar="FIXED.dts",
                   help="write the repaired DTS here (default: stdout); never the input")
    p.add_argument("--diff", action="store_true",
                   help="print a unified diff (--- a/FILE, +++ b/FILE) of the repair "
                   "instead of the DTS (with -o, the diff is what is written there)")
    p.add_argument("--timeout", type=solver_seconds, metavar="SECONDS",
                   help="per-query solver limit, positive seconds (default: none); a "
                   "timeout is exit 3, nothing written")


def _check_dialect(args: argparse.Namespace) -> None:
    if args.dialect == "seed":
        raise UsageError("prove/fix cover the xen dialect, not --dialect seed (seed nodes "
                         "are reported under --dialect auto as SEED-UNMERGED); use "
                         "`check --dialect seed`", path=args.file)


def _status_exit(status: str) -> int:
    return {"proved": EXIT_OK, "counterexample": EXIT_VIOLATION}.get(status, EXIT_UNKNOWN)


def prove_config(cfg: Any, timeout: float, explain: bool, orders: str,
                 certificate: BinaryIO | None = None) -> dict[str, Any]:
    """Everything `prove` reports, as the JSON document of spec/proofs.md.

    The obligations are built, discharged and dropped one rule at a time (the
    certificate, if asked for, is written to `certificate` as each rule is decided),
    so memory holds one rule's queries, not the whole config's."""
    # z3 takes ~70 ms to import: loaded here so that the other subcommands never pay it
    from . import certify, encode
    from .facts import build

    t0 = time.perf_counter()
    facts = build(cfg)
    t_enc = time.perf_counter() - t0

    def timed_groups() -> Iterator[tuple[str, list[Any]]]:
        nonlocal t_enc
        groups = encode.rule_groups(facts)
        while True:
            t = time.perf_counter()
            group = next(groups, None)
            t_enc += time.perf_counter() - t
            if group is None:
                return
            yield group

    writer = certify.CertificateWriter(certificate, cfg.tree.source) \
        if certificate is not None else None
    reports = certify.run_groups(timed_groups(), timeout, explain=explain,
                                 done=writer.rule if writer is not None else None,
                                 release=True)
    if writer is not None:
        writer.close()
    n_queries = sum(len(r.verdicts) for r in reports)
    seen = {r.rule for r in reports}
    doc_obs: list[dict[str, Any]] = []
    for r in reports:
        entry: dict[str, Any] = {
            "rule": r.rule, "claim": r.claim, "status": r.status,
            "queries": len(r.verdicts), "seconds": round(r.seconds, 6),
            "counterexamples": [], "unknown": [v.ob.scope for v in r.verdicts
                                               if v.answer == "unknown"]}
        for v in r.verdicts:
            if v.counterexample is not None:
                cx = v.counterexample.as_json()
                cx["scope"] = v.ob.scope
                cx["core"] = [c.as_json() for c in v.core or []]
                entry["counterexamples"].append(cx)
        if explain:
            entry["cores"] = [{"scope": v.ob.scope,
                               "core": [c.as_json() for c in v.core or []]}
                              for v in r.verdicts if v.answer == "unsat"]
        doc_obs.append(entry)
    for rule in encode.RULE_ORDER:
        if rule not in seen:
            doc_obs.append({"rule": rule, "claim": encode.CLAIMS[rule], "status": "proved",
                            "queries": 0, "seconds": 0.0, "counterexamples": [],
                            "unknown": [], "vacuous": True})
    rank = {r: i for i, r in enumerate(encode.RULE_ORDER)}
    doc_obs.sort(key=lambda e: rank.get(e["rule"], 99))
    statuses = {e["status"] for e in doc_obs}
    universal: dict[str, Any] | None = None
    n_ep = len(facts.endpoints)
    if orders == "on" or (orders == "auto" and 0 < n_ep <= 40):
        from .orders import universal_claims

        universal = universal_claims(cfg, timeout)
        statuses.add(universal["status"])
    verdict = ("counterexample" if "counterexample" in statuses
               else "unknown" if "unknown" in statuses else "proved")
    doc: dict[str, Any] = {
        "format": FORMAT, "file": cfg.tree.source, "xen": cfg.profile.name,
        "dialect": cfg.dialects_used, "verdict": verdict, "obligations": doc_obs,
        "universal": universal, "not_covered": list(NOT_COVERED),
        "queries": n_queries, "seconds": {"encode": round(t_enc, 6),
                                         "total": round(time.perf_counter() - t0, 6)}}
    doc["_reports"] = reports
    return doc


def _text(doc: dict[str, Any]) -> str:
    lines = [f"prove {doc['file']} (Xen {doc['xen']}, dialect {doc['dialect']}): "
             f"{doc['queries']} queries"]
    for e in doc["obligations"]:
        extra = " (no candidates)" if e.get("vacuous") else ""
        lines.append(f"  {e['status']:<14} {e['rule']:<20} {e['claim']}: "
                     f"{e['queries']} queries, {e['seconds']:.3f} s{extra}")
        for cx in e["counterexamples"]:
            lines.append(f"      {cx['scope']}: {cx['message']}")
            for lc in cx["locations"]:
                lines.append(f"        {lc['file']}:{lc['line']}:{lc['column']}: "
                             f"{lc['what']} of {lc['node']}")
            if cx["core"]:
                lines.append("        core: " + ", ".join(
                    f"{c['file']}:{c['line']}:{c['column']}" for c in cx["core"]))
        for scope in e["unknown"]:
            lines.append(f"      {scope}: unknown (timeout or solver gave up)")
        for c in e.get("cores", []):
            if c["core"]:
                lines.append(f"      proof of {c['scope']} needs: " + ", ".join(
                    f"{x['file']}:{x['line']}:{x['column']}" for x in c["core"]))
    u = doc.get("universal")
    if u is not None:
        lines.append(f"  {u['status']:<14} {'ORDERS':<20} {u['claim']}: "
                     f"{u['seconds']:.3f} s")
        for msg in u["findings"]:
            lines.append(f"      {msg['message']}")
    lines.append("  (domain creation rules are assumed, not proved: "
                 + ", ".join(doc["not_covered"]) + "; see `check`)")
    lines.append(f"result: {doc['verdict']}")
    return "\n".join(lines) + "\n"


def public(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if not k.startswith("_")}


def cmd_prove(args: argparse.Namespace) -> int:
    _check_dialect(args)
    if args.steps is not None and not args.policy:
        raise UsageError("--steps needs --policy POLICY.toml")
    target = prepare_output(args.certificate, args) if args.certificate is not None \
        else None
    cfg = load_config(args)
    if args.invariants or args.steps is not None:
        from .attack import cmd

        return cmd(args, cfg)
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
        sys.stdout.write(_text(doc))
    return _status_exit(doc["verdict"])


def unified_diff(path: str, fixed: str) -> str:
    """`fix --diff`: the repair as a patch of `path` (`patch -p1` applies it from the
    directory the path is relative to); empty when nothing changes."""
    import difflib
    from pathlib import Path

    old = Path(path).read_text(encoding="utf-8")
    name = path.lstrip("/")
    while name.startswith("./"):
        name = name[2:].lstrip("/")
    lines = difflib.unified_diff(old.splitlines(keepends=True),
                                 fixed.splitlines(keepends=True),
                                 fromfile=f"a/{name}", tofile=f"b/{name}")
    out = []
    for line in lines:
        out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out)


def cmd_fix(args: argparse.Namespace) -> int:
    _check_dialect(args)
    target = prepare_output(args.output, args)
    from .repair import repair

    cfg = load_config(args)
    res = repair(cfg, args.timeout or 0.0)
    if res.text is not None and res.status not in ("unknown", "unfixable"):
        # written before the summary: a failed write is then the one line said
        write_output(target, unified_diff(cfg.tree.source, res.text) if args.diff
                     else res.text, args, cfg.tree)
    for line in res.summary:
        print(line, file=sys.stderr)
    if res.status == "unknown":
        return EXIT_UNKNOWN
    if res.status == "unfixable":
        return EXIT_VIOLATION
    return EXIT_OK if res.status in ("fixed", "ok") else EXIT_INPUT
