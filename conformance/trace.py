"""Runtime traces on real Xen: the guests make event-channel calls in time slots.

A trace is ``{"calls": [{"caller": DOMID, "op": OP, "args": {...}}, ...]}``
(a bare list of calls is accepted too).  OP is a hypercall: ``send``,
``close``, ``unmask``, ``bind_vcpu`` (args ``port``, ``vcpu``),
``alloc_unbound`` (``remote_dom``), ``bind_interdomain`` (``remote_dom``,
``remote_port``), ``bind_ipi`` (``vcpu``), ``bind_virq`` (``virq``, ``vcpu``),
``status`` (``port``, ``dom``: any domid, DOMID_SELF by default; its copied-back
fields are the call's ``out``), ``reset`` and ``reset_cont`` (``dom``);
or the guest's own shared_info write ``mask`` (set its mask bit) or ``clear``
(clear its pending bit).  The port a bind/alloc call got is reported as the
call's ``port``.

Call i runs in time slot i, on the guest of domain CALLER; after every slot
every guest dumps its whole table again.  Slot 0 starts at an absolute time T0
(2.5 s after QEMU starts) on the physical counter, which every domain shares,
and slots are --slot-ms long (300 ms by default), so calls happen in trace
order as long as one slot is longer than the scheduling jitter; a guest that
starts after T0 makes the runner retry with a later T0.
The result has the shape of `run --format json`: initial, calls (each with its
rc and the changes it caused across all domains), final.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evtchn_spec.grammar.errors import InputError, Span

from .dtbuild import BootPlan
from .qemu import MAX_CMDS, Command, order_problems
from .report import parse_guests, ports_json

# trace op -> (guest op, argument names: the first goes to the guest's port field,
# the second to its arg field; missing optional ones default to 0)
OPS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "send": ("send", ("port",), ()),
    "close": ("close", ("port",), ()),
    "unmask": ("unmask", ("port",), ()),
    "mask": ("setmask", ("port",), ()),
    "clear": ("clear", ("port",), ()),
    "alloc_unbound": ("alloc", (), ("remote_dom",)),
    "bind_interdomain": ("bind", ("remote_port",), ("remote_dom",)),
    "bind_ipi": ("ipi", (), ("vcpu",)),
    "bind_virq": ("virq", ("virq",), ("vcpu",)),
    "bind_vcpu": ("bind_vcpu", ("port",), ("vcpu",)),
    "status": ("status", ("port",), ("dom",)),
    "reset": ("reset", (), ("dom",)),
    "reset_cont": ("reset_cont", (), ("dom",)),
}
DOMID_SELF = 0x7FF0
# optional arguments and their defaults (as spec/trace.md gives them)
OPTIONAL = {"vcpu": 0, "dom": DOMID_SELF}
# EVTCHNOP_status's `status` numbers (public/event_channel.h EVTCHNSTAT_*), the
# names the reference gives them, and the ones whose union member is copied back
STATUS_NAMES = ("closed", "unbound", "interdomain", "pirq", "virq", "ipi")
EVTCHNSTAT_UNBOUND = 1
EVTCHNSTAT_INTERDOMAIN = 2
EVTCHNSTAT_VIRQ = 4


@dataclass(frozen=True, slots=True)
class Call:
    caller: int
    op: str
    port: int
    arg: int = 0
    args: tuple[tuple[str, int], ...] = ()

    def args_json(self) -> dict[str, int]:
        return dict(self.args) if self.args else {"port": self.port}


def load(path: str) -> list[Call]:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(Span(path, 1, 1), f"cannot read: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise InputError(Span(path, exc.lineno, exc.colno), f"not JSON: {exc.msg}") from exc
    return parse(doc, path)


def parse(doc: Any, path: str = "<trace>") -> list[Call]:
    items = doc.get("calls") if isinstance(doc, dict) else doc
    if not isinstance(items, list):
        raise InputError(Span(path, 1, 1), "a trace is a list of calls or {\"calls\": [...]}")
    out: list[Call] = []
    for i, item in enumerate(items):
        where = f"call {i}"
        if not isinstance(item, dict):
            raise InputError(Span(path, 1, 1), f"{where}: not an object")
        caller, op, args = item.get("caller"), item.get("op"), item.get("args") or {}
        if not isinstance(caller, int) or caller < 0:
            raise InputError(Span(path, 1, 1), f"{where}: caller must be a domid")
        if op not in OPS:
            raise InputError(Span(path, 1, 1),
                             f"{where}: op must be one of {', '.join(sorted(OPS))}")
        if not isinstance(args, dict):
            raise InputError(Span(path, 1, 1), f"{where}: args must be an object")
        _, port_names, arg_names = OPS[op]
        values: list[tuple[str, int]] = []
        for name in (*port_names, *arg_names):
            v = args.get(name, OPTIONAL.get(name))
            if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < 1 << 32:
                raise InputError(Span(path, 1, 1), f"{where}: args.{name} must be a number")
            values.append((name, v))
        port = values[0][1] if port_names else 0
        arg = values[len(port_names)][1] if arg_names else 0
        out.append(Call(caller, op, port, arg, tuple(values)))
    if len(out) > MAX_CMDS:
        raise InputError(Span(path, 1, 1), f"at most {MAX_CMDS} calls per trace")
    return out


def schedule(calls: list[Call]) -> tuple[dict[int, list[Command]], int]:
    """Per-domain command tables (call i in slot i) and the number of slots."""
    commands: dict[int, list[Command]] = {}
    for i, c in enumerate(calls):
        commands.setdefault(c.caller, []).append(Command(i, OPS[c.op][0], c.port, c.arg))
    return commands, len(calls)


def _state(guests: dict[int, Any], phase: int) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for domid, g in sorted(guests.items()):
        if phase in g.phases:
            out[str(domid)] = ports_json(g.phases[phase], initial=g.phases.get(0))
    return out


_CLOSED: dict[str, Any] = {"status": "closed", "pending": False, "masked": False}


def _changes(before: dict[str, list[dict[str, Any]]], after: dict[str, list[dict[str, Any]]]
             ) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for dom in sorted(set(before) | set(after), key=int):
        b = {p["port"]: p for p in before.get(dom, [])}
        a = {p["port"]: p for p in after.get(dom, [])}
        for port in sorted(set(b) | set(a)):
            pb, pa = b.get(port, _CLOSED), a.get(port, _CLOSED)
            for key in ("status", "remote_dom", "remote_port", "pending", "masked"):
                if pb.get(key) != pa.get(key):
                    out.append({"dom": int(dom), "port": port, "field": key,
                                "from": pb.get(key), "to": pa.get(key)})
    return out


def status_out(made: dict[str, Any]) -> dict[str, Any]:
    """EVTCHNOP_status's copied-back fields in the reference's `out` shape: the union
    member the status names (unbound: dom; interdomain: dom, port; virq: virq), vcpu."""
    st = made["st"]
    out: dict[str, Any] = {"status": STATUS_NAMES[st] if st < len(STATUS_NAMES) else st}
    if st == EVTCHNSTAT_UNBOUND:
        out["dom"] = made["sdom"]
    elif st == EVTCHNSTAT_INTERDOMAIN:
        out["dom"], out["port"] = made["sdom"], made["sport"]
    elif st == EVTCHNSTAT_VIRQ:
        out["virq"] = made["svirq"]
    out["vcpu"] = made["svcpu"]
    return out


def run_json(console: list[str], plan: BootPlan, boot: dict[str, Any],
             calls: list[Call]) -> dict[str, Any]:
    guests = parse_guests(console)
    names = {str(d.domid): d.name for d in plan.domains}
    doc: dict[str, Any] = {"format": 1, "initial": boot, "calls": []}
    missing: list[str] = []
    for i, c in enumerate(calls):
        g = guests.get(c.caller)
        made: dict[str, Any] = {}
        if g is not None:
            for m in g.calls:
                if m["slot"] == i:
                    made = m
        before, after = _state(guests, i), _state(guests, i + 1)
        if set(after) != set(before) or "rc" not in made:
            missing.append(f"slot {i}")
        entry: dict[str, Any] = {"caller": c.caller, "op": c.op, "args": c.args_json(),
                                 "rc": made.get("rc")}
        if "out" in made:
            entry["port"] = made["out"]
        if c.op == "status" and made.get("rc") == 0 and "st" in made:
            entry["out"] = status_out(made)
        entry["changes"] = _changes(before, after)
        doc["calls"].append(entry)
    missing.extend(order_problems(console, len(calls)))
    final = _state(guests, len(calls))
    doc["final"] = {"format": 1, "outcome": boot.get("outcome"),
                    "domains": {d: {"name": names.get(d, f"d{d}"), "ports": ports}
                                for d, ports in final.items()}}
    if missing:
        doc["incomplete"] = missing
    return doc
