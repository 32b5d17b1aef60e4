"""`evtchn-spec run FILE TRACE.json`: hypercall traces applied to the booted state.

A trace (spec/trace.md, format 1) is a list of calls, each a calling domain, an
operation and its raw arguments; any domain may call anything with any argument
(hostile callers are the point). Every call is applied to refimpl/xen_state.py's
port tables in order; the result is the `run` JSON of ARCHITECTURE.md: the initial
(booted) state, per call its return code, its copied-back output and every
observable change (per port and field, per vCPU, upcalls raised), and the final
state. The state JSON extends the boot JSON's port entries with `vcpu` (and `virq`,
`linked`), which EVTCHNOP_status and the FIFO word expose.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import fifo
from .boot import BootResult
from .grammar.errors import InputError, Span
from .xen_state import (
    DOMID_SELF,
    EINVAL,
    ERRNO_NAMES,
    EVTCHN_2L_NR_CHANNELS,
    STATE_NAMES,
    Domain,
    XenState,
)

TRACE_FORMAT = 1
RUN_FORMAT = 1
DOMID_FIRST_RESERVED = 0x7FF0

U16, U32, U64 = 0xFFFF, 0xFFFFFFFF, (1 << 64) - 1


@dataclass(frozen=True, slots=True)
class Arg:
    name: str
    limit: int  # largest value the hypercall's field can hold
    default: int | None = None  # None: required


@dataclass(frozen=True, slots=True)
class OpSpec:
    kind: str  # "hypercall", "guest" (a write to the guest's own memory) or "event"
    args: tuple[Arg, ...]
    xen: str  # the Xen function it mirrors


OPS: dict[str, OpSpec] = {
    "send": OpSpec("hypercall", (Arg("port", U32),), "evtchn_send"),
    "close": OpSpec("hypercall", (Arg("port", U32),), "evtchn_close"),
    "unmask": OpSpec("hypercall", (Arg("port", U32),), "evtchn_unmask"),
    "status": OpSpec("hypercall", (Arg("dom", U16, DOMID_SELF), Arg("port", U32)),
                     "evtchn_status"),
    "alloc_unbound": OpSpec("hypercall", (Arg("dom", U16, DOMID_SELF),
                                          Arg("remote_dom", U16)), "evtchn_alloc_unbound"),
    "bind_interdomain": OpSpec("hypercall", (Arg("remote_dom", U16), Arg("remote_port", U32)),
                               "evtchn_bind_interdomain"),
    "bind_ipi": OpSpec("hypercall", (Arg("vcpu", U32, 0),), "evtchn_bind_ipi"),
    "bind_virq": OpSpec("hypercall", (Arg("virq", U32), Arg("vcpu", U32, 0)),
                        "evtchn_bind_virq"),
    "bind_vcpu": OpSpec("hypercall", (Arg("port", U32), Arg("vcpu", U32)), "evtchn_bind_vcpu"),
    "reset": OpSpec("hypercall", (Arg("dom", U16, DOMID_SELF),), "evtchn_reset"),
    "reset_cont": OpSpec("hypercall", (Arg("dom", U16, DOMID_SELF),), "evtchn_reset"),
    "init_control": OpSpec("hypercall", (Arg("control_gfn", U64, 0), Arg("offset", U32, 0),
                                         Arg("vcpu", U32, 0)), "evtchn_fifo_init_control"),
    "expand_array": OpSpec("hypercall", (Arg("array_gfn", U64, 0),), "evtchn_fifo_expand_array"),
    "set_priority": OpSpec("hypercall", (Arg("port", U32), Arg("priority", U32)),
                           "evtchn_set_priority"),
    "mask": OpSpec("guest", (Arg("port", U32),), "shared_info/event word MASKED := 1"),
    "clear": OpSpec("guest", (Arg("port", U32),), "shared_info/event word PENDING := 0"),
    "ack": OpSpec("guest", (Arg("vcpu", U32, 0),), "upcall handler clears its flags"),
    "destroy": OpSpec("event", (), "domain_kill -> evtchn_destroy"),
}


@dataclass(frozen=True, slots=True)
class Call:
    caller: int
    op: str
    args: dict[str, int]
    span: Span


# -- trace files ------------------------------------------------------------------

_WS = re.compile(r"[ \t\n\r]*")
_SCALAR = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?|true|false|null"
                     r"|NaN|-?Infinity")


Path_ = tuple[str | int, ...]
# json's own string scanner (typeshed does not declare it)
scanstring: Callable[[str, int], tuple[str, int]] = json.decoder.__dict__["scanstring"]


def _positions(text: str) -> tuple[dict[Path_, int], dict[Path_, int]]:
    """Offsets of every value, and of every object key, of a document json.loads
    accepted, by path."""
    pos: dict[Path_, int] = {}
    keypos: dict[Path_, int] = {}

    def value(i: int, path: tuple[str | int, ...]) -> int:
        i = _WS.match(text, i).end()  # type: ignore[union-attr]
        pos[path] = i
        c = text[i]
        if c in "{[":
            close = "}" if c == "{" else "]"
            i = _WS.match(text, i + 1).end()  # type: ignore[union-attr]
            if text[i] == close:
                return i + 1
            n = 0
            while True:
                i = _WS.match(text, i).end()  # type: ignore[union-attr]
                if c == "{":
                    at = i
                    key, i = scanstring(text, i + 1)
                    keypos[(*path, key)] = at
                    i = _WS.match(text, i).end() + 1  # type: ignore[union-attr]
                    i = value(i, (*path, key))
                else:
                    i = value(i, (*path, n))
                    n += 1
                i = _WS.match(text, i).end()  # type: ignore[union-attr]
                if text[i] == ",":
                    i += 1
                    continue
                return i + 1
        if c == '"':
            return scanstring(text, i + 1)[1]
        m = _SCALAR.match(text, i)
        assert m is not None
        return m.end()

    value(0, ())
    return pos, keypos


def _span(path: str, text: str, offset: int) -> Span:
    line = text.count("\n", 0, offset) + 1
    col = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return Span(path, line, col)


def load_trace(path: str) -> list[Call]:
    """Read and validate a trace file; any problem is one InputError line."""
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except OSError as exc:
        raise InputError(Span(path, 1, 1), f"cannot read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise InputError(Span(path, 1, 1), f"not UTF-8 text: {exc.reason}") from exc
    return parse_trace(text, path)


def parse_trace(text: str, path: str = "<trace>") -> list[Call]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(Span(path, exc.lineno, exc.colno), f"not JSON: {exc.msg}") from exc
    pos, keypos = _positions(text)

    def err(where: Path_, message: str, key: bool = False) -> InputError:
        offset = (keypos if key else pos).get(where, 0)
        return InputError(_span(path, text, offset), message)

    base: tuple[str | int, ...] = ()
    if isinstance(doc, dict):
        extra = set(doc) - {"format", "calls", "comment"}
        if extra:
            k = sorted(extra)[0]
            raise err((k,), f"unknown key {k!r} (a trace has format, calls, comment)",
                      key=True)
        fmt = doc.get("format", TRACE_FORMAT)
        if fmt != TRACE_FORMAT or isinstance(fmt, bool):
            raise err(("format",), f"trace format {fmt!r} is not supported (only 1)")
        items = doc.get("calls")
        base = ("calls",)
        if items is None:
            raise err((), 'a trace is {"calls": [...]} or a bare list of calls')
    else:
        items = doc
    if not isinstance(items, list):
        raise err(base, "the calls must be a list")
    out: list[Call] = []
    for i, item in enumerate(items):
        here = (*base, i)
        if not isinstance(item, dict):
            raise err(here, f"call {i}: not an object")
        for k in item:
            if k not in ("caller", "op", "args", "comment"):
                raise err((*here, k), f"call {i}: unknown key {k!r}", key=True)
        caller = item.get("caller")
        if caller is None:
            raise err(here, f"call {i}: no caller")
        if not _is_int(caller) or not 0 <= caller < DOMID_FIRST_RESERVED:
            raise err((*here, "caller"), f"call {i}: caller must be a domid (0..32751)")
        op = item.get("op")
        if not isinstance(op, str) or op not in OPS:
            raise err((*here, "op") if "op" in item else here,
                      f"call {i}: op must be one of {', '.join(sorted(OPS))}")
        spec = OPS[op]
        args = item.get("args", {})
        if not isinstance(args, dict):
            raise err((*here, "args"), f"call {i}: args must be an object")
        names = {a.name for a in spec.args}
        for k in args:
            if k not in names:
                raise err((*here, "args", k), f"call {i}: {op} takes no argument {k!r} "
                          f"(it takes {', '.join(sorted(names)) or 'none'})", key=True)
        values: dict[str, int] = {}
        for a in spec.args:
            v = args.get(a.name, a.default)
            if v is None:
                raise err((*here, "args") if "args" in item else here,
                          f"call {i}: {op} needs args.{a.name}")
            if not _is_int(v) or not 0 <= v <= a.limit:
                raise err((*here, "args", a.name),
                          f"call {i}: args.{a.name} must be an integer 0..{a.limit}")
            values[a.name] = v
        out.append(Call(caller, op, values, _span(path, text, pos.get(here, 0))))
    return out


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


# -- applying calls ------------------------------------------------------------


def apply(state: XenState, call: Call) -> tuple[int | None, dict[str, Any] | None]:
    """One call: (rc, copied-back output). rc None: the caller is not running."""
    c, a = call.caller, call.args
    d = state.domains.get(c)
    if d is None:
        return None, None
    handlers: dict[str, Callable[[], tuple[int, Any]]] = {
        "send": lambda: state.hc_send(c, a["port"]),
        "close": lambda: state.hc_close(c, a["port"]),
        "unmask": lambda: state.hc_unmask(c, a["port"]),
        "status": lambda: state.hc_status(c, a["dom"], a["port"]),
        "alloc_unbound": lambda: _port_out(state.hc_alloc_unbound(c, a["dom"], a["remote_dom"])),
        "bind_interdomain": lambda: _port_out(
            state.hc_bind_interdomain(c, a["remote_dom"], a["remote_port"])),
        "bind_ipi": lambda: _port_out(state.hc_bind_ipi(c, a["vcpu"])),
        "bind_virq": lambda: _port_out(state.hc_bind_virq(c, a["virq"], a["vcpu"])),
        "bind_vcpu": lambda: state.hc_bind_vcpu(c, a["port"], a["vcpu"]),
        "reset": lambda: state.hc_reset(c, a["dom"]),
        "reset_cont": lambda: state.hc_reset(c, a["dom"], resuming=True),
        "init_control": lambda: fifo.init_control(d, a["vcpu"], a["offset"]),
        "expand_array": lambda: (fifo.expand_array(d), None),
        "set_priority": lambda: (fifo.set_priority(d, a["port"], a["priority"]), None),
        "mask": lambda: (_guest_mask(d, a["port"]), None),
        "clear": lambda: (_guest_clear(d, a["port"]), None),
        "ack": lambda: (_guest_ack(d, a["vcpu"]), None),
        "destroy": lambda: (state.domain_destroy(c), None),
    }
    rc, out = handlers[call.op]()
    return rc, out if rc == 0 else None


def _port_out(r: tuple[int, int | None]) -> tuple[int, dict[str, int] | None]:
    rc, port = r
    return rc, ({"port": port} if rc == 0 and port is not None else None)


def _guest_mask(d: Domain, port: int) -> int:
    """The guest sets its own mask bit (2-level bitmap, or FIFO word MASKED)."""
    if d.evtchn_fifo:
        if not fifo.has_word(d, port):
            return -EINVAL
        d.fifo_masked.add(port)
    else:
        if port >= EVTCHN_2L_NR_CHANNELS:
            return -EINVAL
        d.evtchn_mask.add(port)
    return 0


def _guest_clear(d: Domain, port: int) -> int:
    """The guest clears its own pending bit (FIFO: consumes the event: PENDING and
    LINKED cleared)."""
    if d.evtchn_fifo:
        if not fifo.has_word(d, port):
            return -EINVAL
        d.fifo_pending.discard(port)
        d.fifo_linked.pop(port, None)
    else:
        if port >= EVTCHN_2L_NR_CHANNELS:
            return -EINVAL
        d.evtchn_pending.discard(port)
    return 0


def _guest_ack(d: Domain, vcpu: int) -> int:
    """The guest's upcall handler: evtchn_upcall_pending := 0, selector (FIFO:
    READY) read and cleared."""
    if vcpu >= d.max_vcpus:
        return -EINVAL
    d.evtchn_upcall_pending[vcpu] = False
    d.evtchn_pending_sel[vcpu] = 0
    d.fifo_ready[vcpu] = False
    return 0


# -- the run JSON --------------------------------------------------------------

PORT_FIELDS = ("status", "remote_dom", "remote_port", "virq", "vcpu", "static", "pending",
               "masked", "linked")


def port_entries(d: Domain) -> list[dict[str, Any]]:
    """Every port not closed, and every closed port with an event bit set."""
    fifo_on = d.evtchn_fifo
    pend = d.fifo_pending if fifo_on else d.evtchn_pending
    mask = d.fifo_masked if fifo_on else d.evtchn_mask
    ports = set(pend) | set(mask) | {p for p, ch in d.chans.items() if ch.state > 1}
    if fifo_on:
        ports |= set(d.fifo_linked)
    out: list[dict[str, Any]] = []
    for port in sorted(ports):
        ch = d.chans.get(port)
        state = ch.state if ch is not None else 0
        e: dict[str, Any] = {"port": port,
                             "status": "closed" if state <= 1 else STATE_NAMES[state]}
        if ch is not None and state == 2:
            e["remote_dom"] = ch.remote_domid
        elif ch is not None and state == 3:
            e["remote_dom"], e["remote_port"] = ch.remote_dom, ch.remote_port
        elif ch is not None and state == 5:
            e["virq"] = ch.virq
        if state > 1 and ch is not None:
            e["vcpu"] = ch.notify_vcpu_id
        e["static"] = ch is not None and state > 1 and ch.static_node is not None
        e["pending"] = port in pend
        e["masked"] = port in mask
        if fifo_on:
            e["linked"] = port in d.fifo_linked
        out.append(e)
    return out


def vcpu_entries(d: Domain) -> dict[str, dict[str, Any]]:
    """vCPU 0 always, others once something touched them."""
    vcpus = sorted({0} | set(d.evtchn_upcall_pending) | set(d.evtchn_pending_sel)
                   | set(d.fifo_ready) | d.fifo_control)
    out: dict[str, dict[str, Any]] = {}
    for v in vcpus:
        e: dict[str, Any] = {"upcall_pending": d.evtchn_upcall_pending.get(v, False),
                             "pending_sel": d.evtchn_pending_sel.get(v, 0)}
        if d.evtchn_fifo:
            e["control_block"] = v in d.fifo_control
            e["ready"] = d.fifo_ready.get(v, False)
        out[str(v)] = e
    return out


def state_json(state: XenState, names: dict[int, str]) -> dict[str, Any]:
    doms: dict[str, Any] = {}
    for domid in sorted(state.domains):
        d = state.domains[domid]
        doms[str(domid)] = {"name": names.get(domid, d.name), "abi": "fifo" if d.evtchn_fifo
                            else "2l", "vcpus": vcpu_entries(d), "ports": port_entries(d)}
    return doms


# what an unlisted vCPU holds (vcpu_entries lists only vCPUs something touched)
_VCPU_DEFAULT: dict[str, Any] = {"upcall_pending": False, "pending_sel": 0,
                                 "control_block": False, "ready": False}


def _changes(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for dom in sorted(set(before) | set(after), key=int):
        b, a = before.get(dom), after.get(dom)
        if (b is None) != (a is None):
            out.append({"dom": int(dom), "field": "domain",
                        "from": b["name"] if b else None, "to": a["name"] if a else None})
        b = b or {"ports": [], "vcpus": {}, "abi": None}
        a = a or {"ports": [], "vcpus": {}, "abi": None}
        if b["abi"] != a["abi"] and b["abi"] and a["abi"]:
            out.append({"dom": int(dom), "field": "abi", "from": b["abi"], "to": a["abi"]})
        bp = {p["port"]: p for p in b["ports"]}
        ap = {p["port"]: p for p in a["ports"]}
        closed = {"status": "closed", "static": False, "pending": False, "masked": False}
        for port in sorted(set(bp) | set(ap)):
            pb, pa = bp.get(port, closed), ap.get(port, closed)
            for f in PORT_FIELDS:
                if pb.get(f) != pa.get(f):
                    out.append({"dom": int(dom), "port": port, "field": f,
                                "from": pb.get(f), "to": pa.get(f)})
        for v in sorted(set(b["vcpus"]) | set(a["vcpus"]), key=int):
            vb, va = b["vcpus"].get(v, {}), a["vcpus"].get(v, {})
            for f in sorted(set(vb) | set(va)):
                old, new = vb.get(f, _VCPU_DEFAULT.get(f)), va.get(f, _VCPU_DEFAULT.get(f))
                if old != new:
                    out.append({"dom": int(dom), "vcpu": int(v), "field": f,
                                "from": old, "to": new})
    return out


def run(res: BootResult, calls: list[Call]) -> dict[str, Any]:
    """The `run` document for a boot result and a trace."""
    initial = res.to_json()
    doc: dict[str, Any] = {"format": RUN_FORMAT, "initial": initial, "calls": [],
                           "final": None}
    if res.outcome != "booted":
        return doc
    state = res.state
    names = {int(k): v["name"] for k, v in initial["domains"].items()}
    for d in state.domains.values():
        d.upcalls.clear()  # boot's own upcalls are in the initial state
    before = state_json(state, names)
    # the initial state: boot's port entries with run's extra fields added
    initial["domains"] = {k: dict(before[k], ports=before[k]["ports"]) for k in before}
    for call in calls:
        rc, out = apply(state, call)
        after = state_json(state, names)
        entry: dict[str, Any] = {"caller": call.caller, "op": call.op, "args": dict(call.args),
                                 "rc": rc}
        if rc is None:
            entry["note"] = f"d{call.caller} is not running: the call is not made"
        elif rc < 0:
            entry["errno"] = ERRNO_NAMES.get(-rc, str(-rc))
        if out is not None:
            if set(out) == {"port"}:
                entry["port"] = out["port"]
            else:
                entry["out"] = out
        entry["changes"] = _changes(before, after)
        ups: list[dict[str, int]] = []
        for domid in sorted(state.domains):
            d = state.domains[domid]
            ups.extend({"dom": domid, "vcpu": v} for v in d.upcalls)
            d.upcalls.clear()
        entry["upcalls"] = ups
        doc["calls"].append(entry)
        before = after
    doc["final"] = {"format": 1, "outcome": "booted", "domains": before}
    return doc


def to_text(doc: dict[str, Any]) -> str:
    """One line per call, then the final ports of each domain."""
    ini = doc["initial"]
    if ini.get("outcome") != "booted":
        return (f"boot panicked: {ini.get('panic')} ({ini.get('error')}); no call was "
                "applied\n")
    lines: list[str] = []
    for i, c in enumerate(doc["calls"]):
        args = ", ".join(f"{k}={v:#x}" if v == DOMID_SELF else f"{k}={v}"
                         for k, v in c["args"].items())
        rc = "not made" if c["rc"] is None else (
            f"{c['rc']}" + (f" ({c['errno']})" if "errno" in c else ""))
        got = f", port {c['port']}" if "port" in c else (
            f", {json.dumps(c['out'])}" if "out" in c else "")
        lines.append(f"#{i} d{c['caller']} {c['op']}({args}) -> {rc}{got}")
        for ch in c["changes"]:
            where = (f"d{ch['dom']}:{ch['port']}" if "port" in ch else
                     f"d{ch['dom']} vcpu{ch['vcpu']}" if "vcpu" in ch else f"d{ch['dom']}")
            lines.append(f"      {where} {ch['field']}: {ch['from']} -> {ch['to']}")
        for u in c["upcalls"]:
            lines.append(f"      upcall d{u['dom']} vcpu{u['vcpu']}")
    lines.append("final:")
    for domid, d in doc["final"]["domains"].items():
        lines.append(f"d{domid} {d['name']} ({d['abi']}):")
        if not d["ports"]:
            lines.append("    (no ports)")
        for p in d["ports"]:
            peer = (f" -> d{p['remote_dom']}:{p['remote_port']}" if "remote_port" in p else
                    f" (waiting for d{p['remote_dom']})" if "remote_dom" in p else
                    f" virq {p['virq']}" if "virq" in p else "")
            flags = "".join([" static" if p["static"] else "",
                             " pending" if p["pending"] else "",
                             " masked" if p["masked"] else ""])
            lines.append(f"    port {p['port']:4d} {p['status']}{peer}{flags}")
    return "\n".join(lines) + "\n"


# -- invariants (spec/semantics.md §Invariants) ---------------------------------


def invariant_violations(state: XenState,
                         boot_peers: dict[tuple[int, int], tuple[int, int]]
                         ) -> list[tuple[str, str]]:
    """Every single-state invariant that does not hold, as (ID, detail).

    `boot_peers` maps each end of a channel the boot made to its other end
    (the ghost the proofs need: Xen keeps no such record).
    """
    bad: list[tuple[str, str]] = []
    for domid, d in state.domains.items():
        if d.state_of(0) != 1:
            bad.append(("INV-RESERVED", f"d{domid}:0 is not reserved"))
        if d.valid_evtchns % 64 or d.valid_evtchns < 64:
            bad.append(("INV-VALID", f"d{domid} valid_evtchns {d.valid_evtchns}"))
        active = 0
        for port, ch in d.chans.items():
            where = f"d{domid}:{port}"
            if port != 0 and ch.state == 1:
                bad.append(("INV-RESERVED", f"{where} reserved"))
            if ch.state == 0:
                if ch.notify_vcpu_id != 0 or ch.static_node is not None:
                    bad.append(("INV-FREE", f"{where} free but vcpu/static set"))
                continue
            if port != 0:
                active += 1
                if not d.port_is_valid(port):
                    bad.append(("INV-VALID", f"{where} beyond valid_evtchns"))
                if port > d.max_evtchn_port or port >= d.max_evtchns():
                    bad.append(("INV-LIMIT", f"{where} above the domain's limit"))
            if ch.notify_vcpu_id >= d.max_vcpus:
                bad.append(("INV-VCPU", f"{where} notify vCPU {ch.notify_vcpu_id}"))
            if ch.static_node is not None and ch.state not in (2, 3):
                bad.append(("INV-STATIC", f"{where} static in state {ch.state}"))
            if ch.state == 3:
                rd = state.domains.get(ch.remote_dom)
                rch = rd.chans.get(ch.remote_port) if rd is not None else None
                if (rch is None or rch.state != 3 or rch.remote_dom != domid
                        or rch.remote_port != port or (ch.remote_dom, ch.remote_port)
                        == (domid, port)):
                    bad.append(("INV-SYMMETRIC", f"{where} -> d{ch.remote_dom}:"
                                f"{ch.remote_port} does not point back"))
                elif (ch.static_node is not None and rch.static_node is not None
                      and boot_peers.get((domid, port)) != (ch.remote_dom, ch.remote_port)):
                    bad.append(("INV-STATIC-PEER", f"{where} static, bound to another "
                                "static port than its boot peer"))
            if ch.state == 5:
                v = 0 if _global(ch.virq) else ch.notify_vcpu_id
                if d.virq_to_evtchn.get((v, ch.virq)) != port:
                    bad.append(("INV-VIRQ", f"{where} virq {ch.virq} not in vCPU {v}'s table"))
        if active != d.active_evtchns:
            bad.append(("INV-ACTIVE", f"d{domid} active_evtchns {d.active_evtchns}, "
                        f"{active} ports in use"))
        for (v, virq), port in d.virq_to_evtchn.items():
            vch = d.chans.get(port)
            if vch is None or vch.state != 5 or vch.virq != virq or v != (
                    0 if _global(virq) else vch.notify_vcpu_id):
                bad.append(("INV-VIRQ", f"d{domid} vCPU {v} virq {virq} -> port {port}"))
        if not d.evtchn_fifo and not d.fifo_used:
            for port in d.evtchn_pending:
                if d.state_of(port) <= 1:
                    bad.append(("INV-PENDING-USABLE", f"d{domid}:{port} pending but closed"))
        if not d.evtchn_fifo and any(p >= EVTCHN_2L_NR_CHANNELS
                                     for p in d.evtchn_pending | d.evtchn_mask):
            bad.append(("INV-2L-RANGE", f"d{domid} has a 2-level bit at or above 4096"))
    return bad


def _global(virq: int) -> bool:
    from .xen_state import virq_is_global
    return virq_is_global(virq)


def boot_peers(res: BootResult) -> dict[tuple[int, int], tuple[int, int]]:
    """Both ends of every channel the boot made, each mapped to the other."""
    out: dict[tuple[int, int], tuple[int, int]] = {}
    for c in res.channels:
        out[(c.dom_a, c.port_a)] = (c.dom_b, c.port_b)
        out[(c.dom_b, c.port_b)] = (c.dom_a, c.port_a)
    return out


# -- the state as plain arrays (spec/semantics.md §1), for the Z3 encodings ------

STATE_CODES = {"free": 0, "reserved": 1, "unbound": 2, "interdomain": 3, "pirq": 4,
               "virq": 5, "ipi": 6}


def arrays(state: XenState, peers: dict[tuple[int, int], tuple[int, int]]
           ) -> dict[str, dict[tuple[int, ...], int]]:
    """The state of semantics.md §1 as sparse arrays: a missing index holds the
    default (0 / false / free); domain arrays are indexed (d,), port arrays (d, p),
    vCPU arrays (d, v), v2e (d, v, q). Only live domains appear."""
    a: dict[str, dict[tuple[int, ...], int]] = {k: {} for k in (
        "live", "ctrl", "nvcpu", "maxport", "valid", "fifo", "st", "rdom", "rport", "vcpu",
        "virq", "static", "bootpeer_dom", "bootpeer_port", "pend", "mask", "sel", "up",
        "v2e")}
    for domid, d in state.domains.items():
        key = (domid,)
        a["live"][key] = 1
        a["ctrl"][key] = int(state.is_control_domain(domid))
        a["nvcpu"][key] = d.max_vcpus
        a["maxport"][key] = d.max_evtchn_port
        a["valid"][key] = d.valid_evtchns
        a["fifo"][key] = int(d.evtchn_fifo)
        for port, ch in d.chans.items():
            if ch.state == 0:
                continue
            k = (domid, port)
            a["st"][k] = ch.state
            if ch.state == 2:
                a["rdom"][k] = ch.remote_domid
            elif ch.state == 3:
                a["rdom"][k], a["rport"][k] = ch.remote_dom, ch.remote_port
            elif ch.state == 5:
                a["virq"][k] = ch.virq
            if ch.notify_vcpu_id:
                a["vcpu"][k] = ch.notify_vcpu_id
            if ch.static_node is not None:
                a["static"][k] = 1
        for p in d.evtchn_pending:
            a["pend"][(domid, p)] = 1
        for p in d.evtchn_mask:
            a["mask"][(domid, p)] = 1
        for v, sel in d.evtchn_pending_sel.items():
            if sel:
                a["sel"][(domid, v)] = sel
        for v, up in d.evtchn_upcall_pending.items():
            if up:
                a["up"][(domid, v)] = 1
        for (v, q), p in d.virq_to_evtchn.items():
            a["v2e"][(domid, v, q)] = p
    for (d_, p_), (e, q) in peers.items():
        a["bootpeer_dom"][(d_, p_)] = e
        a["bootpeer_port"][(d_, p_)] = q
    return a
