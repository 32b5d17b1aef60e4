"""Runtime traces on real Xen: the guests make event-channel calls in time slots.

A trace is ``{"calls": [{"caller": DOMID, "op": OP, "args": {"port": P}}, ...]}``
(a bare list of calls is accepted too).  OP is one of the hypercalls ``send``,
``close``, ``unmask``, or the guest's own shared_info writes ``mask`` (set its
mask bit) and ``clear`` (clear its pending bit).

Call i runs in time slot i, on the guest of domain CALLER; after every slot
every guest dumps its whole table again.  The slots are fixed wall-clock
windows measured on the physical counter, which all domains share, so calls
happen in trace order as long as one slot is longer than the scheduling
jitter (--slot-ms, 300 ms by default; a run takes about slots x slot-ms).
The result has the shape of `run --format json`: initial, calls (each with its
rc and the changes it caused across all domains), final.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..grammar.errors import InputError, Span
from .dtbuild import BootPlan
from .qemu import Command
from .report import parse_guests, ports_json

OP_NAMES = {"send": "send", "close": "close", "unmask": "unmask", "mask": "setmask",
            "clear": "clear"}


@dataclass(frozen=True, slots=True)
class Call:
    caller: int
    op: str
    port: int


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
        if op not in OP_NAMES:
            raise InputError(Span(path, 1, 1),
                             f"{where}: op must be one of {', '.join(sorted(OP_NAMES))}")
        port = args.get("port") if isinstance(args, dict) else None
        if not isinstance(port, int) or not 0 <= port < 1 << 32:
            raise InputError(Span(path, 1, 1), f"{where}: args.port must be a port number")
        out.append(Call(caller, op, port))
    if len(out) > 64:
        raise InputError(Span(path, 1, 1), "at most 64 calls per trace")
    return out


def schedule(calls: list[Call]) -> tuple[dict[int, list[Command]], int]:
    """Per-domain command tables (call i in slot i) and the number of slots."""
    commands: dict[int, list[Command]] = {}
    for i, c in enumerate(calls):
        commands.setdefault(c.caller, []).append(Command(i, OP_NAMES[c.op], c.port))
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


def run_json(console: list[str], plan: BootPlan, boot: dict[str, Any],
             calls: list[Call]) -> dict[str, Any]:
    guests = parse_guests(console)
    names = {str(d.domid): d.name for d in plan.domains}
    doc: dict[str, Any] = {"format": 1, "initial": boot, "calls": []}
    missing: list[str] = []
    for i, c in enumerate(calls):
        g = guests.get(c.caller)
        rc = None
        if g is not None:
            for made in g.calls:
                if made["slot"] == i:
                    rc = made["rc"]
        before, after = _state(guests, i), _state(guests, i + 1)
        if set(after) != set(before) or rc is None:
            missing.append(f"slot {i}")
        doc["calls"].append({"caller": c.caller, "op": c.op, "args": {"port": c.port},
                             "rc": rc, "changes": _changes(before, after)})
    final = _state(guests, len(calls))
    doc["final"] = {"format": 1, "outcome": boot.get("outcome"),
                    "domains": {d: {"name": names.get(d, f"d{d}"), "ports": ports}
                                for d, ports in final.items()}}
    if missing:
        doc["incomplete"] = missing
    return doc
