"""`check --policy FILE`: which domain pairs may share a channel (TOML).

    # allow-list; every channel between a pair not listed is reported (POL-DENIED)
    [[allow]]
    a = "domU1"          # a domain name (the xen,domain node name), "Domain-0"/"dom0",
    b = "domU2"          # or a domid as an integer
    [[allow]]
    a = "domU3"
    b = "domU3"          # a loopback channel inside domU3

Pairs are unordered. `default = "allow"` at top level turns the list around: then
`[[deny]]` entries name the pairs that are reported.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from evtchn_spec.grammar.errors import InputError, Span, file_span
from evtchn_spec.grammar.inputs import read_input

from .boot import BootChannel, BootResult

_DOM0_ALIASES = ("domain-0", "dom0", "d0")
DOMID_LAST = 0x7FEF  # the largest domid a domain can have (DOMID_FIRST_RESERVED - 1)
# Arrays and inline tables nested deeper than this are refused before tomllib sees
# them (it recurses per level and would fail a few hundred levels down); a policy
# needs 2 levels.
MAX_POLICY_DEPTH = 100
_AT = re.compile(r"^(?P<msg>.*?)\s*\(at line (?P<line>\d+), column (?P<col>\d+)\)$", re.S)
# what can hold a bracket that is not one: strings and comments (TOML's forms)
_TOKENS = re.compile(r'"""(?:[^"\\]|\\.|"(?!""))*"""|\'\'\'(?:[^\']|\'(?!\'\'))*\'\'\''
                     r'|"(?:[^"\\\n]|\\.)*"|\'[^\'\n]*\'|#[^\n]*|[\[\]{}]')
_LONG_DIGITS = re.compile(r"[0-9_]{4301,}")


def _pos(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _too_deep(text: str) -> int | None:
    """Offset of the first `[` or `{` that opens level MAX_POLICY_DEPTH + 1, or None.
    (Table headers such as `[[allow]]` open two levels and close them on their line.)"""
    depth = 0
    for m in _TOKENS.finditer(text):
        c = m.group()
        if c in "[{":
            depth += 1
            if depth > MAX_POLICY_DEPTH:
                return m.start()
        elif c in "]}":
            depth = max(depth - 1, 0)
    return None


def _parse(text: str, name: str) -> dict[str, object]:
    """tomllib's reading of the policy, every failure one located InputError."""
    deep = _too_deep(text)
    if deep is not None:
        raise InputError(Span(name, *_pos(text, deep)),
                         f"nested too deeply (a policy nests at most {MAX_POLICY_DEPTH} levels)")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = _AT.match(str(exc))
        if m is None:
            raise InputError(file_span(name), f"not a TOML policy: {exc}") from None
        raise InputError(Span(name, int(m.group("line")), int(m.group("col"))),
                         f"not a TOML policy: {m.group('msg')}") from None
    except ValueError:  # an integer of more digits than int() converts
        m2 = _LONG_DIGITS.search(text)
        where = Span(name, *_pos(text, m2.start())) if m2 else file_span(name)
        raise InputError(where, "integer too long (not a domid)") from None
    except RecursionError:  # pragma: no cover - _too_deep refuses such text first
        raise InputError(file_span(name), "nested too deeply") from None


def _key_span(text: str, name: str, key: str, index: int | None = None,
              field: str | None = None) -> Span:
    """Where top-level `key` is written (the index-th `[[key]]` entry, and its `field`
    line when found); the file itself when the text does not show it plainly."""
    if index is None:
        m = re.search(rf"^[ \t]*{key}[ \t]*=[ \t]*", text, re.M)
        return Span(name, *_pos(text, m.end())) if m else file_span(name)
    heads = list(re.finditer(rf"^[ \t]*\[\[[ \t]*{key}[ \t]*\]\]", text, re.M))
    if index >= len(heads):
        return file_span(name)
    start = heads[index].start()
    end = heads[index + 1].start() if index + 1 < len(heads) else len(text)
    nxt = re.compile(r"^[ \t]*\[", re.M).search(text, heads[index].end())
    if nxt is not None:
        end = min(end, nxt.start())
    if field is not None:
        m = re.compile(rf"^[ \t]*{field}[ \t]*=[ \t]*", re.M).search(text, start, end)
        if m is not None:
            return Span(name, *_pos(text, m.end()))
    return Span(name, *_pos(text, start + len(heads[index].group()) -
                             len(heads[index].group().lstrip())))


@dataclass(frozen=True, slots=True)
class Policy:
    default_allow: bool
    pairs: frozenset[frozenset[str]]
    source: str

    @classmethod
    def load(cls, path: str | Path) -> Policy:
        name = str(path)
        try:
            raw = read_input(name, what="policy")
        except OSError as exc:
            raise InputError(file_span(name), f"cannot read policy: {exc.strerror or exc}") \
                from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(file_span(name), f"not a TOML policy: not UTF-8 text "
                             f"({exc.reason})") from None
        return cls.parse(text, name)

    @classmethod
    def parse(cls, text: str, name: str = "<policy>") -> Policy:
        """A policy from its TOML text (`name` is shown in errors)."""
        data = _parse(text, name)
        default = data.get("default", "deny")
        if default not in ("allow", "deny"):
            raise InputError(_key_span(text, name, "default"),
                             'default must be "allow" or "deny"')
        key = "deny" if default == "allow" else "allow"
        entries = data.get(key, [])
        if not isinstance(entries, list):
            raise InputError(_key_span(text, name, key), f"[[{key}]] must be an array of tables")
        pairs: set[frozenset[str]] = set()
        for i, e in enumerate(entries):
            if not isinstance(e, dict) or "a" not in e or "b" not in e:
                raise InputError(_key_span(text, name, key, i),
                                 f"[[{key}]] entry {i + 1} needs a and b")
            ends = []
            for f in ("a", "b"):
                v = e[f]
                if isinstance(v, bool) or not isinstance(v, (int, str)):
                    raise InputError(_key_span(text, name, key, i, f),
                                     f"[[{key}]] entry {i + 1}: {f} must be a domain name "
                                     "or a domid")
                if isinstance(v, int) and not 0 <= v <= DOMID_LAST:
                    raise InputError(_key_span(text, name, key, i, f),
                                     f"[[{key}]] entry {i + 1}: {f} is not a domid "
                                     f"(0..{DOMID_LAST})")
                ends.append(_norm(v))
            pairs.add(frozenset(ends))
        return cls(default == "allow", frozenset(pairs), name)

    def allows(self, a: str, b: str) -> bool:
        listed = frozenset((a, b)) in self.pairs
        return not listed if self.default_allow else listed

    def denied(self, res: BootResult) -> Iterator[tuple[BootChannel, str]]:
        names = {d.domid: d.name for d in res.domains}
        for ch in res.channels:
            ka = {_norm(ch.dom_a), _norm(names.get(ch.dom_a, ""))}
            kb = {_norm(ch.dom_b), _norm(names.get(ch.dom_b, ""))}
            if not any(self.allows(x, y) for x in ka for y in kb if x and y):
                yield ch, (f"channel d{ch.dom_a}:{ch.port_a} ({names.get(ch.dom_a)}) <-> "
                           f"d{ch.dom_b}:{ch.port_b} ({names.get(ch.dom_b)}) is not allowed "
                           f"by {self.source}")


def _norm(v: object) -> str:
    if isinstance(v, int):
        return f"#{v}"
    s = str(v).strip()
    if s.lower() in _DOM0_ALIASES:
        return "#0"
    if s.isascii() and s.isdigit():
        return f"#{s.lstrip('0') or '0'}"  # (int()'s canonical form, at any length)
    return s
