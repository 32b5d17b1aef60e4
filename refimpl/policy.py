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

import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .boot import BootChannel, BootResult
from .grammar.errors import InputError, Span

_DOM0_ALIASES = ("domain-0", "dom0", "d0")


@dataclass(frozen=True, slots=True)
class Policy:
    default_allow: bool
    pairs: frozenset[frozenset[str]]
    source: str

    @classmethod
    def load(cls, path: str | Path) -> Policy:
        name = str(path)
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise InputError(Span(name, 0, 0), f"cannot read policy: {exc.strerror or exc}") \
                from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise InputError(Span(name, 1, 1), f"not a TOML policy: {exc}") from None
        default = data.get("default", "deny")
        if default not in ("allow", "deny"):
            raise InputError(Span(name, 1, 1), 'default must be "allow" or "deny"')
        key = "deny" if default == "allow" else "allow"
        entries = data.get(key, [])
        if not isinstance(entries, list):
            raise InputError(Span(name, 1, 1), f"[[{key}]] must be an array of tables")
        pairs: set[frozenset[str]] = set()
        for i, e in enumerate(entries):
            if not isinstance(e, dict) or "a" not in e or "b" not in e:
                raise InputError(Span(name, 1, 1), f"[[{key}]] entry {i + 1} needs a and b")
            pairs.add(frozenset((_norm(e["a"]), _norm(e["b"]))))
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
    if s.isdigit():
        return f"#{int(s)}"
    return s
