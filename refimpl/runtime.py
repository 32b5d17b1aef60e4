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

import gc
import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from evtchn_spec.grammar.errors import InputError, Span, file_span
from evtchn_spec.grammar.inputs import read_input

from . import fifo
from .boot import BootResult, port_line
from .evtchn_common import (
    ECS_FREE,
    ECS_INTERDOMAIN,
    ECS_RESERVED,
    ECS_UNBOUND,
    ECS_VIRQ,
    EINVAL,
    ERRNO_NAMES,
    EVTCHN_2L_NR_CHANNELS,
    STATE_NAMES,
)
from .xen_state import DOMID_SELF, Domain, XenState, evtchn_set_priority, virq_is_global

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


_ARG_NAMES = {op: frozenset(a.name for a in spec.args) for op, spec in OPS.items()}
_ARG_TRIPLES = {op: tuple((a.name, a.limit, a.default) for a in spec.args)
                for op, spec in OPS.items()}
_CALL_KEYS = frozenset(("caller", "op", "args", "comment"))
_NO_ARGS: dict[str, Any] = {}


@dataclass(frozen=True, slots=True)
class Call:
    caller: int
    op: str
    args: dict[str, int]
    span: Span


# -- trace files ------------------------------------------------------------------
#
# A trace is read once, by json's C scanner, one call at a time: the reader walks the
# top level itself (a list, or an object whose "calls" is one) and hands every call to
# the scanner, so it knows where each call starts without a second pass over the text.
# Anything the walk does not expect goes to json.loads, whose error is the one reported.
# Positions inside a call are found again only when a call is wrong.

MAX_TRACE_DEPTH = 100  # the document's nesting levels (a valid trace needs 4; comments nest)
_MAX_INT_DIGITS = 40  # longer integer literals are out of every range: not converted
_JSON_WS = " \t\n\r"
_NESTING = re.compile(r'"(?:[^"\\]|\\.)*+"|[\[\]{}]')

Path_ = tuple[str | int, ...]
# json's own string scanner (typeshed does not declare it)
scanstring: Callable[[str, int], tuple[str, int]] = json.decoder.__dict__["scanstring"]


class _HugeInt(int):
    """An integer literal of more than _MAX_INT_DIGITS digits: held as +-2**64 (beyond
    every argument's range, so it fails the same checks) and shown by its length."""

    digits: int

    def __new__(cls, literal: str) -> _HugeInt:
        neg = literal.startswith("-")
        obj = super().__new__(cls, -(1 << 64) if neg else 1 << 64)
        obj.digits = len(literal) - neg
        return obj

    def __repr__(self) -> str:
        return f"{'-' if self < 0 else ''}<an integer of {self.digits} digits>"

    __str__ = __repr__


def _parse_int(literal: str) -> int:
    return int(literal) if len(literal) <= _MAX_INT_DIGITS else _HugeInt(literal)


# the decoders' C scanners (typeshed does not declare scan_once)
_SCAN: Callable[[str, int], tuple[Any, int]] = vars(json.JSONDecoder())["scan_once"]
_SCAN_BIG: Callable[[str, int], tuple[Any, int]] = vars(
    json.JSONDecoder(parse_int=_parse_int))["scan_once"]


class _Irregular(Exception):
    """The walk met something that is not JSON: json.loads says what."""


def _ws(text: str, i: int) -> int:
    n = len(text)
    while i < n and text[i] in _JSON_WS:
        i += 1
    return i


class _Lines:
    """Line and column of offsets asked in increasing order: each costs only the text
    since the previous one (a trace of a million calls stays linear)."""

    __slots__ = ("k", "line", "nl", "path", "text")

    def __init__(self, path: str, text: str) -> None:
        self.path, self.text = path, text
        self.k, self.line, self.nl = 0, 1, -1

    def span(self, offset: int) -> Span:
        if offset < self.k:
            self.k, self.line, self.nl = 0, 1, -1
        n = self.text.count("\n", self.k, offset)
        if n:
            self.line += n
            self.nl = self.text.rfind("\n", self.k, offset)
        self.k = offset
        return Span(self.path, self.line, offset - self.nl)


def _span(path: str, text: str, offset: int) -> Span:
    return _Lines(path, text).span(offset)


def _walk(text: str, scan: Callable[[str, int], tuple[Any, int]]
          ) -> tuple[Any, int, dict[str, int], dict[str, int], list[Any] | None, list[int]]:
    """The document: (value, its offset, offsets of its keys and of their values if it
    is an object, the calls list walked item by item (or None), those items' offsets).
    Raises _Irregular on anything but well-formed JSON."""
    try:
        i = _ws(text, 0)
        start = i
        keypos: dict[str, int] = {}
        valpos: dict[str, int] = {}
        calls: list[Any] | None = None
        offsets: list[int] = []
        if i < len(text) and text[i] == "[":
            calls, i = _walk_list(text, i, scan, offsets)
            doc: Any = calls
        elif i < len(text) and text[i] == "{":
            doc = {}
            i = _ws(text, i + 1)
            if text[i] != "}":
                while True:
                    if text[i] != '"':
                        raise _Irregular
                    at = i
                    key, i = scanstring(text, i + 1)
                    i = _ws(text, i)
                    if text[i] != ":":
                        raise _Irregular
                    i = _ws(text, i + 1)
                    keypos[key], valpos[key] = at, i
                    if key == "calls" and text[i] == "[":
                        item_offsets: list[int] = []
                        value, i = _walk_list(text, i, scan, item_offsets)
                        calls, offsets = value, item_offsets
                    else:
                        value, i = scan(text, i)
                        if key == "calls":
                            calls, offsets = None, []
                    doc[key] = value
                    i = _ws(text, i)
                    if text[i] == ",":
                        i = _ws(text, i + 1)
                        continue
                    if text[i] != "}":
                        raise _Irregular
                    break
            i += 1
        else:
            doc, i = scan(text, i)
        if _ws(text, i) != len(text):
            raise _Irregular
        return doc, start, keypos, valpos, calls, offsets
    except (StopIteration, IndexError, json.JSONDecodeError):
        raise _Irregular from None


def _walk_list(text: str, i: int, scan: Callable[[str, int], tuple[Any, int]],
               offsets: list[int]) -> tuple[list[Any], int]:
    """The list at text[i] == "[", each item's offset appended to offsets."""
    items: list[Any] = []
    i = _ws(text, i + 1)
    if text[i] == "]":
        return items, i + 1
    append, note = items.append, offsets.append
    ws = _JSON_WS
    while True:
        note(i)
        value, i = scan(text, i)
        append(value)
        while text[i] in ws:
            i += 1
        c = text[i]
        if c == ",":
            i += 1
            while text[i] in ws:
                i += 1
            continue
        if c == "]":
            return items, i + 1
        raise _Irregular


def _locate(text: str, i: int, path: Path_, key: bool) -> int:
    """The offset of the value at `path` below the value at text[i] (of its key, if
    `key`); the last of duplicate keys, as json keeps. Used for errors only."""
    for depth, step in enumerate(path):
        last = depth == len(path) - 1
        if text[i] == "{":
            found: tuple[int, int] | None = None
            i = _ws(text, i + 1)
            while text[i] == '"':
                at = i
                k, i = scanstring(text, i + 1)
                i = _ws(text, _ws(text, i) + 1)
                if k == step:
                    found = (at, i)
                i = _ws(text, _SCAN_BIG(text, i)[1])
                if text[i] == ",":
                    i = _ws(text, i + 1)
            if found is None:
                return i
            if last and key:
                return found[0]
            i = found[1]
        elif text[i] == "[" and isinstance(step, int):
            i = _ws(text, i + 1)
            for _ in range(step):
                i = _ws(text, _SCAN_BIG(text, i)[1])
                i = _ws(text, i + 1)  # the comma
        else:
            return i
    return i


def _too_deep(text: str) -> int | None:
    """The offset of the first bracket that opens the document's level
    MAX_TRACE_DEPTH + 1, or None."""
    depth = 0
    for m in _NESTING.finditer(text):
        c = m.group()
        if c in "[{":
            depth += 1
            if depth > MAX_TRACE_DEPTH:
                return m.start()
        elif c in "]}":
            depth -= 1
    return None


def _depth(v: Any) -> int:
    """How deeply a (comment) value nests, without recursion."""
    best = 0
    stack: list[tuple[Any, int]] = [(v, 0)]
    while stack:
        x, d = stack.pop()
        if isinstance(x, (list, dict)):
            d += 1
            best = max(best, d)
            if d > MAX_TRACE_DEPTH:
                break
            stack.extend((y, d) for y in (x.values() if isinstance(x, dict) else x))
    return best


def _short(v: object) -> str:
    r = repr(v)
    return r if len(r) <= 60 else r[:57] + "..."


def load_trace(path: str) -> list[Call]:
    """Read and validate a trace file; any problem is one InputError line."""
    try:
        data = read_input(path, what="trace")
    except OSError as exc:
        raise InputError(file_span(path), f"cannot read: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(file_span(path), f"not UTF-8 text: {exc.reason}") from None
    del data
    return parse_trace(text, path)


def _not_json(text: str, path: str) -> InputError:
    """json.loads's own report of what is wrong with `text`."""
    try:
        json.loads(text, parse_int=_parse_int)
    except json.JSONDecodeError as exc:
        return InputError(Span(path, exc.lineno, exc.colno), f"not JSON: {exc.msg}")
    except RecursionError:
        return _deep(text, path)
    return InputError(file_span(path), "not JSON")  # pragma: no cover - the walk agrees


def _deep(text: str, path: str) -> InputError:
    """At the bracket that opens the document's level MAX_TRACE_DEPTH + 1."""
    at = _too_deep(text)
    return InputError(_span(path, text, 0 if at is None else at),
                      f"nested too deeply (a trace nests at most {MAX_TRACE_DEPTH} levels)")


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a trace is read or run: it makes no cycles,
    and a collection rescans every object made so far (quadratic over a long trace)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def parse_trace(text: str, path: str = "<trace>") -> list[Call]:
    with _gc_paused():
        return _parse_trace(text, path)


def _parse_trace(text: str, path: str) -> list[Call]:
    try:
        try:
            doc, start, keypos, valpos, items, offsets = _walk(text, _SCAN)
        except ValueError:  # an integer literal too long for int(): again, held as huge
            doc, start, keypos, valpos, items, offsets = _walk(text, _SCAN_BIG)
    except _Irregular:
        raise _not_json(text, path) from None
    except RecursionError:
        raise _deep(text, path) from None
    return _validate(text, path, doc, start, keypos, valpos, items, offsets)


def _validate(text: str, path: str, doc: Any, start: int, keypos: dict[str, int],
              valpos: dict[str, int], items: list[Any] | None, offsets: list[int]
              ) -> list[Call]:
    def err(where: Path_, message: str, key: bool = False) -> InputError:
        if not where:
            offset = start
        elif len(where) == 1 and isinstance(where[0], str):
            offset = (keypos if key else valpos).get(where[0], start)
        else:
            i = where[1] if isinstance(doc, dict) else where[0]
            assert isinstance(i, int)
            rest = where[2:] if isinstance(doc, dict) else where[1:]
            offset = _locate(text, offsets[i], rest, key) if rest else offsets[i]
        return InputError(_span(path, text, offset), message)

    base: tuple[str | int, ...] = ()
    if isinstance(doc, dict):
        extra = set(doc) - {"format", "calls", "comment"}
        if extra:
            k = sorted(extra)[0]
            raise err((k,), f"unknown key {_short(k)} (a trace has format, calls, comment)",
                      key=True)
        fmt = doc.get("format", TRACE_FORMAT)
        if fmt != TRACE_FORMAT or isinstance(fmt, bool):
            raise err(("format",), f"trace format {_short(fmt)} is not supported (only 1)")
        if "comment" in doc and 1 + _depth(doc["comment"]) > MAX_TRACE_DEPTH:
            raise _deep(text, path)
        base = ("calls",)
        if doc.get("calls") is None:
            raise err((), 'a trace is {"calls": [...]} or a bare list of calls')
    if not isinstance(items, list):
        raise err(base, "the calls must be a list")
    out: list[Call] = []
    lines = _Lines(path, text)
    for i, item in enumerate(items):
        # the common case, checked in a few C-level steps: every key known, every
        # argument a plain int in range (anything else takes the long way below,
        # which finds the first problem and says where)
        if type(item) is dict and item.keys() <= _CALL_KEYS:
            caller, op = item.get("caller"), item.get("op")
            args = item.get("args", _NO_ARGS)
            if (type(caller) is int and 0 <= caller < DOMID_FIRST_RESERVED
                    and type(op) is str and type(args) is dict and op in OPS
                    and args.keys() <= _ARG_NAMES[op] and "comment" not in item):
                fast: dict[str, int] = {}
                for name, limit, default in _ARG_TRIPLES[op]:
                    v = args.get(name, default)
                    if type(v) is not int or not 0 <= v <= limit:
                        break
                    fast[name] = v
                else:
                    out.append(Call(caller, op, fast, lines.span(offsets[i])))
                    continue
        here = (*base, i)
        if not isinstance(item, dict):
            raise err(here, f"call {i}: not an object")
        for k in item:
            if k not in ("caller", "op", "args", "comment"):
                raise err((*here, k), f"call {i}: unknown key {_short(k)}", key=True)
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
        names = _ARG_NAMES[op]
        for k in args:
            if k not in names:
                raise err((*here, "args", k), f"call {i}: {op} takes no argument {_short(k)} "
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
        if "comment" in item and len(here) + 1 + _depth(item["comment"]) > MAX_TRACE_DEPTH:
            raise _deep(text, path)
        out.append(Call(caller, op, values, lines.span(offsets[i])))
    return out


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


# -- applying calls ------------------------------------------------------------


_Handler = Callable[[XenState, Domain, int, dict[str, int]], tuple[int, Any]]
_HANDLERS: dict[str, _Handler] = {
    "send": lambda s, d, c, a: s.hc_send(c, a["port"]),
    "close": lambda s, d, c, a: s.hc_close(c, a["port"]),
    "unmask": lambda s, d, c, a: s.hc_unmask(c, a["port"]),
    "status": lambda s, d, c, a: s.hc_status(c, a["dom"], a["port"]),
    "alloc_unbound": lambda s, d, c, a: _port_out(s.hc_alloc_unbound(c, a["dom"],
                                                                     a["remote_dom"])),
    "bind_interdomain": lambda s, d, c, a: _port_out(
        s.hc_bind_interdomain(c, a["remote_dom"], a["remote_port"])),
    "bind_ipi": lambda s, d, c, a: _port_out(s.hc_bind_ipi(c, a["vcpu"])),
    "bind_virq": lambda s, d, c, a: _port_out(s.hc_bind_virq(c, a["virq"], a["vcpu"])),
    "bind_vcpu": lambda s, d, c, a: s.hc_bind_vcpu(c, a["port"], a["vcpu"]),
    "reset": lambda s, d, c, a: s.hc_reset(c, a["dom"]),
    "reset_cont": lambda s, d, c, a: s.hc_reset(c, a["dom"], resuming=True),
    "init_control": lambda s, d, c, a: fifo.init_control(d, a["vcpu"], a["offset"]),
    "expand_array": lambda s, d, c, a: (fifo.expand_array(d), None),
    "set_priority": lambda s, d, c, a: (evtchn_set_priority(d, a["port"], a["priority"]),
                                        None),
    "mask": lambda s, d, c, a: (_guest_mask(d, a["port"]), None),
    "clear": lambda s, d, c, a: (_guest_clear(d, a["port"]), None),
    "ack": lambda s, d, c, a: (_guest_ack(d, a["vcpu"]), None),
    "destroy": lambda s, d, c, a: (s.domain_destroy(c), None),
}


def apply(state: XenState, call: Call) -> tuple[int | None, dict[str, Any] | None]:
    """One call: (rc, copied-back output). rc None: the caller is not running."""
    c = call.caller
    d = state.domains.get(c)
    if d is None:
        return None, None
    rc, out = _HANDLERS[call.op](state, d, c, call.args)
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

# The fields of a port entry of the run JSON after "port", in order: boot.PORT_FIELDS
# plus virq, vcpu and linked (a run reaches every state and the FIFO ABI).
PORT_FIELDS = ("status", "remote_dom", "remote_port", "virq", "vcpu", "static", "pending",
               "masked", "linked")


def port_entry(d: Domain, port: int) -> dict[str, Any] | None:
    """The run JSON's entry for one port, or None when port_entries does not list it
    (closed, with no event bit set)."""
    fifo_on = d.evtchn_fifo
    pend = d.fifo_pending if fifo_on else d.evtchn_pending
    mask = d.fifo_masked if fifo_on else d.evtchn_mask
    ch = dict.get(d.chans, port)  # (plain dict access: a tracked table notes no read)
    state = ch.state if ch is not None else ECS_FREE
    if not (state > ECS_RESERVED or port in pend or port in mask
            or (fifo_on and port in d.fifo_linked)):
        return None
    e: dict[str, Any] = {"port": port, "status": "closed" if state <= ECS_RESERVED
                         else STATE_NAMES[state]}
    if ch is not None and state == ECS_UNBOUND:
        e["remote_dom"] = ch.remote_domid
    elif ch is not None and state == ECS_INTERDOMAIN:
        e["remote_dom"], e["remote_port"] = ch.remote_dom, ch.remote_port
    elif ch is not None and state == ECS_VIRQ:
        e["virq"] = ch.virq
    if state > ECS_RESERVED and ch is not None:
        e["vcpu"] = ch.notify_vcpu_id
    e["static"] = ch is not None and state > ECS_RESERVED and ch.static_node is not None
    e["pending"] = port in pend
    e["masked"] = port in mask
    if fifo_on:
        e["linked"] = port in d.fifo_linked
    return e


def port_entries(d: Domain) -> list[dict[str, Any]]:
    """Every port not closed, and every closed port with an event bit set."""
    fifo_on = d.evtchn_fifo
    pend = d.fifo_pending if fifo_on else d.evtchn_pending
    mask = d.fifo_masked if fifo_on else d.evtchn_mask
    ports = set(pend) | set(mask) | {p for p, ch in dict.items(d.chans)
                                     if ch.state > ECS_RESERVED}
    if fifo_on:
        ports |= set(d.fifo_linked)
    out: list[dict[str, Any]] = []
    for port in sorted(ports):
        e = port_entry(d, port)
        assert e is not None
        out.append(e)
    return out


def vcpu_entry(d: Domain, v: int) -> dict[str, Any] | None:
    """The run JSON's entry for one vCPU, or None when vcpu_entries does not list it."""
    if not (v == 0 or v in d.evtchn_upcall_pending or v in d.evtchn_pending_sel
            or v in d.fifo_ready or v in d.fifo_control):
        return None
    e: dict[str, Any] = {"upcall_pending": d.evtchn_upcall_pending.get(v, False),
                         "pending_sel": d.evtchn_pending_sel.get(v, 0)}
    if d.evtchn_fifo:
        e["control_block"] = v in d.fifo_control
        e["ready"] = d.fifo_ready.get(v, False)
    return e


def vcpu_entries(d: Domain) -> dict[str, dict[str, Any]]:
    """vCPU 0 always, others once something touched them."""
    vcpus = sorted({0} | set(d.evtchn_upcall_pending) | set(d.evtchn_pending_sel)
                   | set(d.fifo_ready) | d.fifo_control)
    out: dict[str, dict[str, Any]] = {}
    for v in vcpus:
        e = vcpu_entry(d, v)
        assert e is not None
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


_CLOSED: dict[str, Any] = {"status": "closed", "static": False, "pending": False,
                           "masked": False}


def _port_changes(out: list[dict[str, Any]], dom: int, port: int, pb: dict[str, Any],
                  pa: dict[str, Any]) -> None:
    if pb == pa:  # (equal entries: no field differs)
        return
    for f in PORT_FIELDS:
        if pb.get(f) != pa.get(f):
            out.append({"dom": dom, "port": port, "field": f, "from": pb.get(f),
                        "to": pa.get(f)})


def _vcpu_changes(out: list[dict[str, Any]], dom: int, v: int, vb: dict[str, Any],
                  va: dict[str, Any]) -> None:
    if vb == va:
        return
    for f in sorted(set(vb) | set(va)):
        old, new = vb.get(f, _VCPU_DEFAULT.get(f)), va.get(f, _VCPU_DEFAULT.get(f))
        if old != new:
            out.append({"dom": dom, "vcpu": v, "field": f, "from": old, "to": new})


def _changes(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    """Every observable difference between two state_json documents, in the run JSON's
    order (domains, then per domain its ports, then its vCPUs)."""
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
        for port in sorted(set(bp) | set(ap)):
            _port_changes(out, int(dom), port, bp.get(port, _CLOSED), ap.get(port, _CLOSED))
        for v in sorted(set(b["vcpus"]) | set(a["vcpus"]), key=int):
            _vcpu_changes(out, int(dom), int(v), b["vcpus"].get(v, {}), a["vcpus"].get(v, {}))
    return out


# -- what a call touched -----------------------------------------------------------
#
# `run` reports, per call, every change to the observable state. Comparing the whole
# state before and after each call costs the size of the state per call, and a trace
# that allocates ports makes that quadratic. Instead, while `run` applies calls, the
# containers of every domain are replaced by subclasses that note which ports and
# vCPUs each call reached (any read of a port's struct, any change to a bit set), and
# only those are compared: the same changes, in the same order, at the cost of what
# the call did. Reading a whole port table (`.values()`) marks the whole domain.


class _Touched:
    """What the calls applied since the last `take` reached, per domain."""

    __slots__ = ("domains", "ports", "vcpus", "whole")

    def __init__(self) -> None:
        self.domains: set[int] = set()
        self.whole: set[int] = set()
        self.ports: dict[int, set[int]] = {}
        self.vcpus: dict[int, set[int]] = {}

    def marker(self, domid: int, keys: dict[int, set[int]]) -> Callable[[int], None]:
        doms = self.domains
        own = keys.setdefault(domid, set())

        def mark(k: int) -> None:
            doms.add(domid)
            own.add(k)
        return mark

    def clear(self) -> None:
        ports, vcpus = self.ports, self.vcpus
        for d in self.domains:
            if d in ports:
                ports[d].clear()
            if d in vcpus:
                vcpus[d].clear()
        self.domains.clear()
        self.whole.clear()


class _TSet(set[int]):
    """A set of ports or vCPUs that notes every key a change reaches."""

    __slots__ = ("_mark",)

    def __init__(self, items: set[int], mark: Callable[[int], None]) -> None:
        super().__init__(items)
        self._mark = mark

    def add(self, k: int) -> None:
        self._mark(k)
        super().add(k)

    def discard(self, k: object) -> None:
        self._mark(k)  # type: ignore[arg-type]
        super().discard(k)

    def remove(self, k: int) -> None:
        self._mark(k)
        super().remove(k)

    def pop(self) -> int:
        k = super().pop()
        self._mark(k)
        return k

    def _all(self, more: Any = ()) -> None:
        for k in (*self, *more):
            self._mark(k)

    def clear(self) -> None:
        self._all()
        self._mark(0)  # (the domain is touched even when the set was empty)
        super().clear()

    def update(self, *others: Any) -> None:
        for o in others:
            self._all(o)
            super().update(o)

    def difference_update(self, *others: Any) -> None:
        self._all()
        super().difference_update(*others)

    def intersection_update(self, *others: Any) -> None:
        self._all()
        super().intersection_update(*others)

    def symmetric_difference_update(self, other: Any) -> None:
        self._all(other)
        super().symmetric_difference_update(other)

    def __ior__(self, other: Any) -> _TSet:  # type: ignore[override,misc]
        self.update(other)
        return self

    def __iand__(self, other: Any) -> _TSet:  # type: ignore[misc]
        self.intersection_update(other)
        return self

    def __isub__(self, other: Any) -> _TSet:  # type: ignore[misc]
        self.difference_update(other)
        return self

    def __ixor__(self, other: Any) -> _TSet:  # type: ignore[override,misc]
        self.symmetric_difference_update(other)
        return self


class _TDict(dict[int, Any]):
    """A dict keyed by port, vCPU or domid that notes every key a change reaches
    (and, for a port table, every key read: its struct may be changed in place)."""

    __slots__ = ("_mark", "_reads", "_whole")

    def __init__(self, items: dict[int, Any], mark: Callable[[int], None],
                 whole: Callable[[], None], reads: bool) -> None:
        super().__init__(items)
        self._mark, self._whole, self._reads = mark, whole, reads

    def __setitem__(self, k: int, v: Any) -> None:
        self._mark(k)
        super().__setitem__(k, v)

    def __delitem__(self, k: int) -> None:
        self._mark(k)
        super().__delitem__(k)

    def __getitem__(self, k: int) -> Any:
        if self._reads:
            self._mark(k)
        return dict.__getitem__(self, k)

    def get(self, k: int, default: Any = None) -> Any:
        if self._reads:
            self._mark(k)
        return dict.get(self, k, default)

    def pop(self, k: int, *default: Any) -> Any:
        self._mark(k)
        return super().pop(k, *default)

    def popitem(self) -> tuple[int, Any]:
        item = super().popitem()
        self._mark(item[0])
        return item

    def setdefault(self, k: int, default: Any = None) -> Any:
        self._mark(k)
        return super().setdefault(k, default)

    def update(self, *args: Any, **kw: Any) -> None:
        self._whole()
        super().update(*args, **kw)

    def clear(self) -> None:
        self._whole()
        super().clear()

    def __ior__(self, other: Any) -> _TDict:  # type: ignore[override,misc]
        self.update(other)
        return self

    def values(self) -> Any:
        if self._reads:
            self._whole()
        return super().values()

    def items(self) -> Any:
        if self._reads:
            self._whole()
        return super().items()


_PORT_SETS = ("evtchn_pending", "evtchn_mask", "fifo_pending", "fifo_masked")
_VCPU_SETS = ("fifo_control",)
_VCPU_DICTS = ("evtchn_pending_sel", "evtchn_upcall_pending", "fifo_ready")


def _track(state: XenState, t: _Touched) -> None:
    """Replace every container `run`'s JSON reads by a noting one."""
    doms = t.domains

    def dom_whole() -> None:
        doms.update(dict.keys(state.domains))

    state.domains = _TDict(state.domains, doms.add, dom_whole, reads=True)
    for domid, d in dict.items(state.domains):
        port, vcpu = t.marker(domid, t.ports), t.marker(domid, t.vcpus)

        def whole(domid: int = domid) -> None:
            doms.add(domid)
            t.whole.add(domid)
        d.chans = _TDict(d.chans, port, whole, reads=True)
        d.fifo_linked = _TDict(d.fifo_linked, port, whole, reads=False)
        for name in _PORT_SETS:
            setattr(d, name, _TSet(getattr(d, name), port))
        for name in _VCPU_SETS:
            setattr(d, name, _TSet(getattr(d, name), vcpu))
        for name in _VCPU_DICTS:
            setattr(d, name, _TDict(getattr(d, name), vcpu, whole, reads=False))


def _untrack(state: XenState) -> None:
    """Plain containers again (the state outlives the run)."""
    state.domains = dict(dict.items(state.domains))
    for d in state.domains.values():
        d.chans = dict(dict.items(d.chans))
        d.fifo_linked = dict(dict.items(d.fifo_linked))
        for name in (*_PORT_SETS, *_VCPU_SETS):
            setattr(d, name, set(getattr(d, name)))
        for name in _VCPU_DICTS:
            setattr(d, name, dict(dict.items(getattr(d, name))))


class _View:
    """The last reported state of one domain: its abi, and its listed ports and vCPUs."""

    __slots__ = ("abi", "name", "ports", "vcpus")

    def __init__(self, doc: dict[str, Any]) -> None:
        self.name: str = doc["name"]
        self.abi: str = doc["abi"]
        self.ports: dict[int, dict[str, Any]] = {p["port"]: p for p in doc["ports"]}
        self.vcpus: dict[int, dict[str, Any]] = {int(v): e for v, e in doc["vcpus"].items()}


def _touched_changes(state: XenState, names: dict[int, str], views: dict[int, _View],
                     t: _Touched) -> list[dict[str, Any]]:
    """`_changes(before, after)` for the domains, ports and vCPUs in `t`, where
    `views` is `before`; updates `views` to the state after."""
    out: list[dict[str, Any]] = []
    live = state.domains
    for domid in sorted(t.domains):
        view = views.get(domid)
        d = dict.get(live, domid)
        if view is None and d is None:
            continue
        if (view is None) != (d is None):
            out.append({"dom": domid, "field": "domain",
                        "from": view.name if view else None,
                        "to": names.get(domid, d.name) if d is not None else None})
        if d is None:  # gone: everything it listed goes back to the defaults
            assert view is not None
            for port in sorted(view.ports):
                _port_changes(out, domid, port, view.ports[port], _CLOSED)
            for v in sorted(view.vcpus):
                _vcpu_changes(out, domid, v, view.vcpus[v], {})
            del views[domid]
            continue
        abi = "fifo" if d.evtchn_fifo else "2l"
        if view is None:
            view = views[domid] = _View({"name": names.get(domid, d.name), "abi": abi,
                                          "ports": [], "vcpus": {}})
            whole = True
        else:
            whole = domid in t.whole or view.abi != abi
            if view.abi != abi:
                out.append({"dom": domid, "field": "abi", "from": view.abi, "to": abi})
        view.abi = abi
        if whole:
            ports = sorted(set(view.ports) | {e["port"] for e in port_entries(d)})
            vcpus = sorted(set(view.vcpus) | {int(v) for v in vcpu_entries(d)})
        else:
            tp, tv = t.ports.get(domid), t.vcpus.get(domid)
            ports = sorted(tp) if tp else []
            vcpus = sorted(tv) if tv else []
        for port in ports:
            e = port_entry(d, port)
            _port_changes(out, domid, port, view.ports.get(port, _CLOSED),
                          _CLOSED if e is None else e)
            if e is None:
                view.ports.pop(port, None)
            else:
                view.ports[port] = e
        for v in vcpus:
            e = vcpu_entry(d, v)
            _vcpu_changes(out, domid, v, view.vcpus.get(v, {}), {} if e is None else e)
            if e is None:
                view.vcpus.pop(v, None)
            else:
                view.vcpus[v] = e
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
    views = {int(k): _View(v) for k, v in before.items()}
    touched = _Touched()
    _track(state, touched)
    entries: list[dict[str, Any]] = doc["calls"]
    with _gc_paused():
        _run_calls(state, calls, names, views, touched, entries)
    if calls:
        before = state_json(state, names)
    doc["final"] = {"format": 1, "outcome": "booted", "domains": before}
    return doc


def _run_calls(state: XenState, calls: list[Call], names: dict[int, str],
               views: dict[int, _View], touched: _Touched,
               entries: list[dict[str, Any]]) -> None:
    try:
        for call in calls:
            touched.clear()
            rc, out = apply(state, call)
            entry: dict[str, Any] = {"caller": call.caller, "op": call.op,
                                     "args": dict(call.args), "rc": rc}
            if rc is None:
                entry["note"] = f"d{call.caller} is not running: the call is not made"
            elif rc < 0:
                entry["errno"] = ERRNO_NAMES.get(-rc, str(-rc))
            if out is not None:
                if set(out) == {"port"}:
                    entry["port"] = out["port"]
                else:
                    entry["out"] = out
            entry["changes"] = _touched_changes(state, names, views, touched)
            ups: list[dict[str, int]] = []
            for domid in sorted(touched.domains):
                d = dict.get(state.domains, domid)
                if d is not None and d.upcalls:
                    ups.extend({"dom": domid, "vcpu": v} for v in d.upcalls)
                    d.upcalls.clear()
            entry["upcalls"] = ups
            entries.append(entry)
    finally:
        _untrack(state)


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
        lines += [port_line(p) for p in d["ports"]]
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
        if d.state_of(0) != ECS_RESERVED:
            bad.append(("INV-RESERVED", f"d{domid}:0 is not reserved"))
        if d.valid_evtchns % 64 or d.valid_evtchns < 64:
            bad.append(("INV-VALID", f"d{domid} valid_evtchns {d.valid_evtchns}"))
        active = 0
        for port, ch in d.chans.items():
            where = f"d{domid}:{port}"
            if port != 0 and ch.state == ECS_RESERVED:
                bad.append(("INV-RESERVED", f"{where} reserved"))
            if ch.state == ECS_FREE:
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
            if ch.static_node is not None and ch.state not in (ECS_UNBOUND, ECS_INTERDOMAIN):
                bad.append(("INV-STATIC", f"{where} static in state {ch.state}"))
            if ch.state == ECS_INTERDOMAIN:
                rd = state.domains.get(ch.remote_dom)
                rch = rd.chans.get(ch.remote_port) if rd is not None else None
                if (rch is None or rch.state != ECS_INTERDOMAIN or rch.remote_dom != domid
                        or rch.remote_port != port or (ch.remote_dom, ch.remote_port)
                        == (domid, port)):
                    bad.append(("INV-SYMMETRIC", f"{where} -> d{ch.remote_dom}:"
                                f"{ch.remote_port} does not point back"))
                elif (ch.static_node is not None and rch.static_node is not None
                      and boot_peers.get((domid, port)) != (ch.remote_dom, ch.remote_port)):
                    bad.append(("INV-STATIC-PEER", f"{where} static, bound to another "
                                "static port than its boot peer"))
            if ch.state == ECS_VIRQ:
                v = 0 if virq_is_global(ch.virq) else ch.notify_vcpu_id
                if d.virq_to_evtchn.get((v, ch.virq)) != port:
                    bad.append(("INV-VIRQ", f"{where} virq {ch.virq} not in vCPU {v}'s table"))
        if active != d.active_evtchns:
            bad.append(("INV-ACTIVE", f"d{domid} active_evtchns {d.active_evtchns}, "
                        f"{active} ports in use"))
        for (v, virq), port in d.virq_to_evtchn.items():
            vch = d.chans.get(port)
            if vch is None or vch.state != ECS_VIRQ or vch.virq != virq or v != (
                    0 if virq_is_global(virq) else vch.notify_vcpu_id):
                bad.append(("INV-VIRQ", f"d{domid} vCPU {v} virq {virq} -> port {port}"))
        if not d.evtchn_fifo and not d.fifo_used:
            for port in d.evtchn_pending:
                if d.state_of(port) <= ECS_RESERVED:
                    bad.append(("INV-PENDING-USABLE", f"d{domid}:{port} pending but closed"))
        if not d.evtchn_fifo and any(p >= EVTCHN_2L_NR_CHANNELS
                                     for p in d.evtchn_pending | d.evtchn_mask):
            bad.append(("INV-2L-RANGE", f"d{domid} has a 2-level bit at or above 4096"))
    return bad


def boot_peers(res: BootResult) -> dict[tuple[int, int], tuple[int, int]]:
    """Both ends of every channel the boot made, each mapped to the other."""
    out: dict[tuple[int, int], tuple[int, int]] = {}
    for c in res.channels:
        out[(c.dom_a, c.port_a)] = (c.dom_b, c.port_b)
        out[(c.dom_b, c.port_b)] = (c.dom_a, c.port_a)
    return out


# -- the state as plain arrays (spec/semantics.md §1), for the Z3 encodings ------

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
            if ch.state == ECS_FREE:
                continue
            k = (domid, port)
            a["st"][k] = ch.state
            if ch.state == ECS_UNBOUND:
                a["rdom"][k] = ch.remote_domid
            elif ch.state == ECS_INTERDOMAIN:
                a["rdom"][k], a["rport"][k] = ch.remote_dom, ch.remote_port
            elif ch.state == ECS_VIRQ:
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
