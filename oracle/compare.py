"""The one comparator of two `boot` or `run` documents, field by field.

`compare_boot(expected, got, profile)` and `compare_run(expected, got, profile)`
list every difference as a `Difference` record (in a fixed order, [] when the two
agree); the *profile* says which fields count (spec/oracle.md, "Comparison
profiles"):

* `DIFF_PROTOCOL`: the normative fields of spec/oracle.md §2, what
  `evtchn-spec diff` compares an implementation's documents on;
* `REAL_XEN`: the fields a recording on the real hypervisor shows, what
  `xen --compare`, the corpus tests and `vectors` (for its recorded cases) compare
  the real Xen's documents with the reference's on.

Keys a profile does not name (informative fields, the runner's `observed` section)
are never compared. A record renders as a `diff` line (`Difference.text`,
`Difference.to_json`) or as an `xen --compare` line (`xen_line`; `differences` and
`run_differences` give those lines for a real Xen's documents).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from evtchn_spec.refimpl.boot import PORT_FIELDS as PORT_FIELDS  # (a boot port entry's fields)


class _Absent:
    def __repr__(self) -> str:
        return "(absent)"


ABSENT: Any = _Absent()  # a key one side does not have (a port, a domain, a change)


@dataclass(frozen=True, slots=True)
class Profile:
    """Which fields a comparison compares. `outcome` always is; the rest per part of
    the document (spec/oracle.md, "Comparison profiles", lists both profiles)."""

    name: str
    panic_fields: tuple[str, ...]          # on a panic
    panic_fields_if_both: tuple[str, ...]  # on a panic, only when both sides give a value
    domain_fields: tuple[str, ...]         # per domain both sides have
    port_fields: tuple[str, ...]           # per port both sides have (and shown for the
    #                                        ports only one side has)
    call_fields: tuple[str, ...]           # per call
    status_call_fields: tuple[str, ...]    # per call of `status` only
    port_change_fields: tuple[str, ...]    # a call's changes of a port (they name one)
    domain_change_fields: tuple[str, ...]  # a call's changes of a domain
    # The order differences are listed in, as each caller has always listed them.
    domain_key: Callable[[str], Any]
    port_key: Callable[[Any], Any]
    got_changes_first: bool  # a call's changes only `got` has come before the others


def _domid_number(domid: str) -> tuple[int, str]:
    return (int(domid), domid) if domid.isdigit() else (1 << 30, domid)


def _port_number(port: Any) -> tuple[bool, int, str]:
    return (not isinstance(port, int), port if isinstance(port, int) else 0, str(port))


DIFF_PROTOCOL = Profile(
    name="diff protocol",
    panic_fields=("error", "panic"), panic_fields_if_both=(), domain_fields=(),
    port_fields=PORT_FIELDS, call_fields=("rc", "port", "out"), status_call_fields=(),
    port_change_fields=(*PORT_FIELDS, "vcpu", "virq", "linked"),
    domain_change_fields=("abi", "domain"),
    domain_key=lambda domid: (len(domid), domid),
    port_key=lambda port: (not isinstance(port, int), str(port)),
    got_changes_first=False)

REAL_XEN = Profile(
    name="real Xen",
    panic_fields=("error", "panic"), panic_fields_if_both=("node",), domain_fields=("name",),
    port_fields=PORT_FIELDS, call_fields=("rc", "port"), status_call_fields=("out",),
    port_change_fields=("status", "remote_dom", "remote_port", "pending", "masked"),
    domain_change_fields=(),
    domain_key=_domid_number, port_key=_port_number, got_changes_first=True)


@dataclass(frozen=True, slots=True)
class Difference:
    case: str
    doc: str  # "boot" or "run"
    where: str  # e.g. "call 3 (send by d1)", "initial", "final", ""
    domain: str | None
    port: int | None
    field: str
    expected: Any
    got: Any
    # a change only one side has, as that document gives it: (dom, port, field, from, to)
    change: tuple[Any, ...] | None = dataclasses.field(default=None, compare=False)

    def to_json(self) -> dict[str, Any]:
        """An absent value is null, named in `absent` ("expected" or "got")."""
        out = {"case": self.case, "doc": self.doc, "where": self.where, "domain": self.domain,
               "port": self.port, "field": self.field,
               "expected": None if self.expected is ABSENT else self.expected,
               "got": None if self.got is ABSENT else self.got}
        if self.expected is ABSENT or self.got is ABSENT:
            out["absent"] = "expected" if self.expected is ABSENT else "got"
        return out

    def text(self) -> str:
        """The `diff` line (without its `DIFF `)."""
        parts = [self.case, self.doc]
        if self.where:
            parts.append(self.where)
        if self.domain is not None:
            parts.append(f"domain {self.domain}")
        if self.port is not None:
            parts.append(f"port {self.port}")
        return (f"{' '.join(parts)}: {self.field}: expected {_show(self.expected)}, "
                f"got {_show(self.got)}")


def _show(v: Any) -> str:
    return "(absent)" if v is ABSENT else json.dumps(v)


def _same(a: Any, b: Any) -> bool:
    """spec/oracle.md §2: a missing key and a null value are the same thing."""
    return bool((None if a is ABSENT else a) == (None if b is ABSENT else b))


# -- the comparator --------------------------------------------------------------------

def compare_boot(exp: dict[str, Any], got: dict[str, Any], profile: Profile, *,
                 case: str = "", doc: str = "boot", where: str = "") -> list[Difference]:
    """outcome; on a panic the profile's panic fields; on a boot the set of domains, the
    profile's domain fields, the set of ports of each and the profile's port fields."""
    out: list[Difference] = []

    def d(field_: str, e: Any, g: Any, dom: str | None = None, port: int | None = None) -> None:
        out.append(Difference(case, doc, where, dom, port, field_, e, g))

    e, g = exp.get("outcome", ABSENT), got.get("outcome", ABSENT)
    if not _same(e, g):
        d("outcome", e, g)
        return out
    if e == "panic":
        for k in profile.panic_fields:
            if not _same(exp.get(k, ABSENT), got.get(k, ABSENT)):
                d(k, exp.get(k, ABSENT), got.get(k, ABSENT))
        for k in profile.panic_fields_if_both:
            if exp.get(k) and got.get(k) and exp[k] != got[k]:
                d(k, exp[k], got[k])
        return out
    ed, gd = exp.get("domains") or {}, got.get("domains") or {}
    if not isinstance(gd, dict):
        d("domains", "an object", gd)
        return out
    for domid in sorted(set(ed) | set(gd), key=profile.domain_key):
        if domid not in gd:
            d("domain", "present", ABSENT, domid)
            continue
        if domid not in ed:
            d("domain", ABSENT, "present", domid)
            continue
        edom, gdom = ed[domid] or {}, gd[domid] or {}
        for k in profile.domain_fields:
            if edom.get(k) != gdom.get(k):
                d(k, edom.get(k, ABSENT), gdom.get(k, ABSENT), domid)
        ep, gp = _ports(edom), _ports(gdom)
        for port in sorted(set(ep) | set(gp), key=profile.port_key):
            if port not in gp:
                d("port", _brief(ep[port], profile), ABSENT, domid, port)
            elif port not in ep:
                d("port", ABSENT, _brief(gp[port], profile), domid, port)
            else:
                for f in profile.port_fields:
                    if ep[port].get(f) != gp[port].get(f):
                        d(f, ep[port].get(f, ABSENT), gp[port].get(f, ABSENT), domid, port)
    return out


def _ports(dom: dict[str, Any]) -> dict[Any, dict[str, Any]]:
    return {p.get("port"): p for p in dom.get("ports") or [] if isinstance(p, dict)}


def _brief(port: dict[str, Any], profile: Profile) -> dict[str, Any]:
    return {f: port[f] for f in profile.port_fields if f in port}


def compare_run(exp: dict[str, Any], got: dict[str, Any], profile: Profile, *,
                case: str = "") -> list[Difference]:
    """initial and final as boot documents (final: also null or not); the number of
    calls; per call the profile's call fields and the set of its changes."""
    out = compare_boot(exp.get("initial") or {}, got.get("initial") or {}, profile,
                       case=case, doc="run", where="initial")
    ec, gc = exp.get("calls") or [], got.get("calls") or []
    if len(ec) != len(gc):
        out.append(Difference(case, "run", "", None, None, "number of calls", len(ec), len(gc)))
    for i, (a, b) in enumerate(zip(ec, gc, strict=False)):
        where = f"call {i} ({a.get('op')} by d{a.get('caller')})"
        fields = profile.call_fields + (profile.status_call_fields
                                        if a.get("op") == "status" else ())
        for f in fields:
            if not _same(a.get(f, ABSENT), b.get(f, ABSENT)):
                out.append(Difference(case, "run", where, None, None, f, a.get(f, ABSENT),
                                      b.get(f, ABSENT)))
        ea, gb = _change_set(a, profile), _change_set(b, profile)
        only_exp = [Difference(case, "run", where, _dom(c[0]), c[1], f"change {c[2]}",
                               _arrow(c), ABSENT, change=c)
                    for k, c in sorted(ea.items(), key=_by_key) if k not in gb]
        only_got = [Difference(case, "run", where, _dom(c[0]), c[1], f"change {c[2]}",
                               ABSENT, _arrow(c), change=c)
                    for k, c in sorted(gb.items(), key=_by_key) if k not in ea]
        out += only_got + only_exp if profile.got_changes_first else only_exp + only_got
    ef, gf = exp.get("final"), got.get("final")
    if (ef is None) != (gf is None):
        out.append(Difference(case, "run", "final", None, None, "final",
                              "null" if ef is None else "a state",
                              "null" if gf is None else "a state"))
    elif ef is not None and gf is not None:
        out += compare_boot(dict(ef, outcome="booted"), dict(gf, outcome="booted"), profile,
                            case=case, doc="run", where="final")
    return out


def _change_set(call: dict[str, Any], profile: Profile
                ) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """A call's compared changes: (dom, port, field, from, to) with from and to as JSON
    (so any value can be in a set) -> the change as the document gives it. A port
    field's change names its port (vCPU-level changes do not: they are not compared)."""
    out: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    for c in call.get("changes") or []:
        if not isinstance(c, dict):
            continue
        f = c.get("field")
        if not ((f in profile.port_change_fields and "port" in c)
                or f in profile.domain_change_fields):
            continue
        raw = (c.get("dom"), c.get("port"), f, c.get("from"), c.get("to"))
        out.setdefault((*raw[:3], json.dumps(raw[3]), json.dumps(raw[4])), raw)
    return out


def _by_key(item: tuple[tuple[Any, ...], tuple[Any, ...]]) -> str:
    return repr(item[0])


def _arrow(change: tuple[Any, ...]) -> str:
    return f"{json.dumps(change[3])} -> {json.dumps(change[4])}"


def _dom(v: Any) -> str | None:
    return None if v is None else str(v)


# -- the real hypervisor's lines (`xen --compare`, the corpus, recorded vectors) -------------

def xen_line(d: Difference) -> str:
    """One difference as `xen --compare` prints it: `got` is the real Xen's side."""
    e, g = (None if d.expected is ABSENT else d.expected), (None if d.got is ABSENT else d.got)
    side = "only on xen" if d.expected is ABSENT else "only in the reference"
    if d.change is not None:
        return f"{d.where}: change {side}: {d.change}"
    if d.where.startswith("call "):
        return f"{d.where}: {d.field} xen={g!r} reference={e!r}"
    if d.field == "number of calls":
        return f"calls: xen has {g}, reference has {e}"
    if d.field == "final":
        return f"final: xen has {g}, reference has {e}"
    at = f"{d.where}: " if d.where else ""
    if d.domain is None:
        return f"{at}{d.field}: xen={g!r} reference={e!r}"
    if d.field == "domain":
        return f"{at}domain {d.domain}: {side}"
    if d.port is None:
        return f"{at}domain {d.domain} {d.field}: xen={g!r} reference={e!r}"
    if d.field == "port":
        shown: dict[str, Any] = d.got if d.expected is ABSENT else d.expected
        brief = " ".join(f"{k}={v}" for k, v in shown.items())
        return f"{at}domain {d.domain} port {d.port}: {side} ({brief})"
    return f"{at}domain {d.domain} port {d.port} {d.field}: xen={g!r} reference={e!r}"


def differences(xen: dict[str, Any], ref: dict[str, Any]) -> list[str]:
    """A real Xen's `boot` document against the reference's: its lines, [] when they agree."""
    return [xen_line(d) for d in compare_boot(ref, xen, REAL_XEN)]


def run_differences(xen: dict[str, Any], ref: dict[str, Any]) -> list[str]:
    """A real Xen's `run` document against the reference's: its lines, [] when they agree."""
    return [xen_line(d) for d in compare_run(ref, xen, REAL_XEN)]
