"""What `prove` reports, as the JSON document of spec/proofs.md (and its text form):
every obligation with its verdict and time, the counterexamples mapped to DTS places,
optionally the certificate (SMT-LIB 2), and the universal claims over /chosen orders
and Xen versions (orders.py). The command line is cli/prove.py."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, BinaryIO

from evtchn_spec.refimpl import rules as R

FORMAT = 1
# The domain creation rules, which `prove` assumes (refimpl/rules.py: R.ASSUMED).
NOT_COVERED = tuple(r.id for r in R.all_rules() if r.prove == R.ASSUMED)


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

    def timed(it: Iterator[Any]) -> Iterator[Any]:
        """`it`, with the time spent building each item added to the encoding time
        (a port rule's obligations are built as the solver takes them)."""
        nonlocal t_enc
        while True:
            t = time.perf_counter()
            item = next(it, None)
            t_enc += time.perf_counter() - t
            if item is None:
                return
            yield item

    def timed_groups() -> Iterator[tuple[str, Iterator[Any]]]:
        for rule, group in timed(encode.rule_groups(facts)):
            yield rule, timed(iter(group))

    writer = certify.CertificateWriter(certificate, cfg.tree.source) \
        if certificate is not None else None
    reports = certify.run_groups(timed_groups(), timeout, explain=explain,
                                 decided=writer.batch if writer is not None else None,
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
        why = {v.ob.scope: v.ob.unsupported for v in r.verdicts if v.ob.unsupported}
        if why:  # unknown by construction, not for want of time
            entry["unsupported"] = why
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
        from .orders import universal_claims  # (z3: 50-70 ms, as above)

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


def to_text(doc: dict[str, Any]) -> str:
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
            why = e.get("unsupported", {}).get(scope, "timeout or solver gave up")
            lines.append(f"      {scope}: unknown ({why})")
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
