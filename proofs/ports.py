"""Xen's lowest-free-port rule, once, for the three port models of the proofs.

Xen's `get_free_port(d)` (xen/common/event_channel.c) walks the ports of d from 0
up and returns the first one `evtchn_allocate_port` accepts: port 0 is
ECS_RESERVED, so a port-0 request (`evtchn_get_port(d, 0)`, used by the static
event channels' bind side) gets the lowest port >= 1 that no channel holds.

`lowest_free(L, q, held)` states that rule for a candidate port `q`: q >= 1, no
held port equals q, and the held ports in 1..q-1 number q - 1 (all of them are
taken). It is written once over a small logic `L` and read three ways: as SMT-LIB
text (encode.py, the certifier's obligations), as Z3 terms (orders.py, every walk
order and Xen version) and as plain Python values (repair.py, checking the port a
kept port-0 cell binds).

It is deliberately independent of refimpl/xen_state.py (`Domain.get_free_port`):
the proofs are a second checker of the same rules, so they restate Xen's rule from
its source instead of calling the reference implementation; a bug in one then shows
up as a disagreement between the two (tests/test_proofs_agreement.py) rather than in
both at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic, TypeVar

import z3

from .facts import XENSTORE_PORT

B = TypeVar("B")  # a formula of the logic
N = TypeVar("N")  # an integer term of the logic


class Logic(Generic[B, N]):
    """The few connectives `lowest_free` needs; each subclass is one reading."""

    def all(self, parts: Sequence[B]) -> B:
        raise NotImplementedError

    def not_(self, a: B) -> B:
        raise NotImplementedError

    def implies(self, a: B, b: B) -> B:
        raise NotImplementedError

    def eq(self, a: N, b: N) -> B:
        raise NotImplementedError

    def ne(self, a: N, b: N) -> B:
        raise NotImplementedError

    def ge(self, a: N, b: N) -> B:
        raise NotImplementedError

    def le(self, a: N, b: N) -> B:
        raise NotImplementedError

    def lt(self, a: N, b: N) -> B:
        raise NotImplementedError

    def gt(self, a: N, b: N) -> B:
        raise NotImplementedError

    def num(self, n: int) -> N:
        raise NotImplementedError

    def one_if(self, a: B) -> N:
        """1 when a holds, else 0."""
        raise NotImplementedError

    def total(self, terms: Sequence[N]) -> N:
        raise NotImplementedError

    def minus_one(self, a: N) -> N:
        raise NotImplementedError


class Smt(Logic[str, str]):
    """SMT-LIB text (the obligations certify.py sends to the solver)."""

    def all(self, parts: Sequence[str]) -> str:
        return "(and " + " ".join(parts) + ")"

    def not_(self, a: str) -> str:
        return f"(not {a})"

    def implies(self, a: str, b: str) -> str:
        return f"(or (not {a}) {b})"

    def eq(self, a: str, b: str) -> str:
        return f"(= {a} {b})"

    def ne(self, a: str, b: str) -> str:
        return f"(not (= {a} {b}))"

    def ge(self, a: str, b: str) -> str:
        return f"(>= {a} {b})"

    def le(self, a: str, b: str) -> str:
        return f"(<= {a} {b})"

    def lt(self, a: str, b: str) -> str:
        return f"(< {a} {b})"

    def gt(self, a: str, b: str) -> str:
        return f"(> {a} {b})"

    def num(self, n: int) -> str:
        return str(n)

    def one_if(self, a: str) -> str:
        return f"(ite {a} 1 0)"

    def total(self, terms: Sequence[str]) -> str:
        return "(+ " + " ".join(terms) + " 0)" if terms else "0"

    def minus_one(self, a: str) -> str:
        return f"(- {a} 1)"


class Z3(Logic[z3.BoolRef, z3.ArithRef]):
    """Z3 terms in one context. The comparisons call the left operand's method: with
    an operator, Python would let a numeral on the right build the mirrored term
    (`1 <= p` for `p >= 1`), a different term for the solver."""

    def __init__(self, ctx: z3.Context) -> None:
        self.ctx = ctx

    def all(self, parts: Sequence[z3.BoolRef]) -> z3.BoolRef:
        return z3.And(*parts)

    def not_(self, a: z3.BoolRef) -> z3.BoolRef:
        return z3.Not(a)

    def implies(self, a: z3.BoolRef, b: z3.BoolRef) -> z3.BoolRef:
        return z3.Implies(a, b)

    def eq(self, a: z3.ArithRef, b: z3.ArithRef) -> z3.BoolRef:
        return a.__eq__(b)

    def ne(self, a: z3.ArithRef, b: z3.ArithRef) -> z3.BoolRef:
        return a.__ne__(b)

    def ge(self, a: z3.ArithRef, b: z3.ArithRef) -> z3.BoolRef:
        return a.__ge__(b)

    def le(self, a: z3.ArithRef, b: z3.ArithRef) -> z3.BoolRef:
        return a.__le__(b)

    def lt(self, a: z3.ArithRef, b: z3.ArithRef) -> z3.BoolRef:
        return a.__lt__(b)

    def gt(self, a: z3.ArithRef, b: z3.ArithRef) -> z3.BoolRef:
        return a.__gt__(b)

    def num(self, n: int) -> z3.ArithRef:
        return z3.IntVal(n, self.ctx)

    def one_if(self, a: z3.BoolRef) -> z3.ArithRef:
        return z3.If(a, self.num(1), self.num(0))

    def total(self, terms: Sequence[z3.ArithRef]) -> z3.ArithRef:
        return z3.Sum(*terms)

    def minus_one(self, a: z3.ArithRef) -> z3.ArithRef:
        return a.__sub__(self.num(1))


class Py(Logic[bool, int]):
    """Plain Python values: a concrete check of one port."""

    def all(self, parts: Sequence[bool]) -> bool:
        return all(parts)

    def not_(self, a: bool) -> bool:
        return not a

    def implies(self, a: bool, b: bool) -> bool:
        return not a or b

    def eq(self, a: int, b: int) -> bool:
        return a == b

    def ne(self, a: int, b: int) -> bool:
        return a != b

    def ge(self, a: int, b: int) -> bool:
        return a >= b

    def le(self, a: int, b: int) -> bool:
        return a <= b

    def lt(self, a: int, b: int) -> bool:
        return a < b

    def gt(self, a: int, b: int) -> bool:
        return a > b

    def num(self, n: int) -> int:
        return n

    def one_if(self, a: bool) -> int:
        return 1 if a else 0

    def total(self, terms: Sequence[int]) -> int:
        return sum(terms)

    def minus_one(self, a: int) -> int:
        return a - 1


SMT = Smt()
PY = Py()


def lowest_free(L: Logic[B, N], q: N, held: Sequence[tuple[B, N]], *,
                limit: N | None = None, xenstore: B | None = None) -> B:
    """`q` is the port get_free_port returns: the lowest port >= 1 free of `held`.

    `held` lists (condition, port) for every port that may be taken at that moment
    (taken when its condition holds). `limit`, when given, bounds q by the domain's
    max_evtchn_port (else a request past it is left to other rules). `xenstore`, when
    given, is the condition under which the xenstore port (1) is taken as well; a
    caller may instead list it in `held`.
    """
    one = L.num(1)
    parts = [L.ge(q, one)]
    if limit is not None:
        parts.append(L.le(q, limit))
    if xenstore is not None:
        parts.append(L.not_(L.all([xenstore, L.eq(q, L.num(XENSTORE_PORT))])))
    below: list[N] = []
    for h, p in held:
        parts.append(L.implies(h, L.ne(p, q)))
        below.append(L.one_if(L.all([h, L.ge(p, one), L.lt(p, q)])))
    if xenstore is not None:
        below.append(L.one_if(L.all([xenstore, L.gt(q, L.num(XENSTORE_PORT))])))
    parts.append(L.eq(L.total(below), L.minus_one(q)))
    return L.all(parts)
