"""Compare two `boot` JSON documents (real Xen vs the reference) field by field.

Only the contract of ARCHITECTURE.md is compared: outcome; for a panic the
error line and panic text (and `node` only when both sides give one, since
Xen never prints it); for a boot every domain's port list.  Extra keys (such as
the runner's "observed" section) are ignored.  Domain names are compared too.
"""

from __future__ import annotations

from typing import Any

PORT_FIELDS = ("status", "remote_dom", "remote_port", "static", "pending", "masked")


def differences(xen: dict[str, Any], ref: dict[str, Any]) -> list[str]:
    """Human-readable differences; [] when the two agree."""
    out: list[str] = []
    if xen.get("outcome") != ref.get("outcome"):
        out.append(f"outcome: xen={xen.get('outcome')!r} reference={ref.get('outcome')!r}")
        return out
    if xen.get("outcome") == "panic":
        for key in ("error", "panic"):
            if xen.get(key) != ref.get(key):
                out.append(f"{key}: xen={xen.get(key)!r} reference={ref.get(key)!r}")
        if xen.get("node") and ref.get("node") and xen["node"] != ref["node"]:
            out.append(f"node: xen={xen['node']!r} reference={ref['node']!r}")
        return out
    xd: dict[str, Any] = xen.get("domains") or {}
    rd: dict[str, Any] = ref.get("domains") or {}
    for domid in sorted(set(xd) | set(rd), key=_domid_key):
        if domid not in rd:
            out.append(f"domain {domid}: only on xen")
            continue
        if domid not in xd:
            out.append(f"domain {domid}: only in the reference")
            continue
        if xd[domid].get("name") != rd[domid].get("name"):
            out.append(f"domain {domid} name: xen={xd[domid].get('name')!r} "
                       f"reference={rd[domid].get('name')!r}")
        xp = {p["port"]: p for p in xd[domid].get("ports", [])}
        rp = {p["port"]: p for p in rd[domid].get("ports", [])}
        for port in sorted(set(xp) | set(rp)):
            if port not in rp:
                out.append(f"domain {domid} port {port}: only on xen ({_brief(xp[port])})")
            elif port not in xp:
                out.append(f"domain {domid} port {port}: only in the reference "
                           f"({_brief(rp[port])})")
            else:
                for f in PORT_FIELDS:
                    if xp[port].get(f) != rp[port].get(f):
                        out.append(f"domain {domid} port {port} {f}: xen={xp[port].get(f)!r} "
                                   f"reference={rp[port].get(f)!r}")
    return out


def _domid_key(domid: str) -> tuple[int, str]:
    return (int(domid), domid) if domid.isdigit() else (1 << 30, domid)


def _brief(port: dict[str, Any]) -> str:
    return " ".join(f"{f}={port[f]}" for f in PORT_FIELDS if f in port)


def run_differences(xen: dict[str, Any], ref: dict[str, Any]) -> list[str]:
    """Differences between two `run` documents: initial state, each call's rc, final state.

    Each call's `rc`, the `port` it got (a status call's `out`: what Xen copied
    back), and its `changes` restricted to the
    fields the real run observes (status, remote_dom, remote_port, pending,
    masked) are compared; so are the initial and final states.
    """
    out = [f"initial: {d}" for d in differences(xen.get("initial", {}), ref.get("initial", {}))]
    xc, rc = xen.get("calls", []), ref.get("calls", [])
    if len(xc) != len(rc):
        out.append(f"calls: xen has {len(xc)}, reference has {len(rc)}")
    for i, (a, b) in enumerate(zip(xc, rc, strict=False)):
        what = f"call {i} ({a.get('op')} by d{a.get('caller')})"
        if a.get("rc") != b.get("rc"):
            out.append(f"{what}: rc xen={a.get('rc')!r} reference={b.get('rc')!r}")
        if a.get("port") != b.get("port"):
            out.append(f"{what}: port xen={a.get('port')!r} reference={b.get('port')!r}")
        if a.get("op") == "status" and a.get("out") != b.get("out"):
            out.append(f"{what}: out xen={a.get('out')!r} reference={b.get('out')!r}")
        xs, rs = _change_set(a), _change_set(b)
        for c in sorted(xs - rs, key=repr):
            out.append(f"{what}: change only on xen: {c}")
        for c in sorted(rs - xs, key=repr):
            out.append(f"{what}: change only in the reference: {c}")
    xf = dict(xen.get("final", {}), outcome="booted")
    rf = dict(ref.get("final", {}), outcome="booted")
    out.extend(f"final: {d}" for d in differences(xf, rf))
    return out


CHANGE_FIELDS = ("status", "remote_dom", "remote_port", "pending", "masked")


def _change_set(call: dict[str, Any]) -> set[tuple[Any, ...]]:
    """A call's changes as (dom, port, field, from, to), for the observable fields only."""
    out: set[tuple[Any, ...]] = set()
    for c in call.get("changes", []):
        if c.get("field") in CHANGE_FIELDS:
            out.add((c.get("dom"), c.get("port"), c.get("field"), c.get("from"), c.get("to")))
    return out
