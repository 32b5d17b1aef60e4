"""proofs/ports.py: the one statement of Xen's lowest-free-port rule, read three ways.

The Python, Z3 and SMT-LIB readings of `lowest_free` must name the same port (the
lowest port >= 1 no channel holds), and the module stays independent of the
reference implementation's allocator.
"""

from __future__ import annotations

import ast
from pathlib import Path

import z3
from hypothesis import given, settings
from hypothesis import strategies as st

from evtchn_spec.proofs import ports

ROOT = Path(__file__).resolve().parent.parent

held_st = st.lists(st.tuples(st.booleans(), st.integers(0, 12)), max_size=8)


def _expected(held: list[tuple[bool, int]], xs: bool, limit: int) -> int | None:
    taken = {p for h, p in held if h} | ({1} if xs else set())
    return next((q for q in range(1, limit + 1) if q not in taken), None)


@settings(max_examples=150, deadline=None)
@given(held_st, st.booleans(), st.integers(1, 14))
def test_the_three_readings_name_the_lowest_free_port(held: list[tuple[bool, int]],
                                                        xs: bool, limit: int) -> None:
    if len({p for h, p in held if h} | ({1} if xs else set())) != sum(h for h, _ in held) + xs:
        return  # Xen never holds one port twice (the count assumes distinct ports)
    want = _expected(held, xs, limit)
    got = [q for q in range(0, limit + 3)
           if ports.lowest_free(ports.PY, q, held, limit=limit, xenstore=xs)]
    assert got == ([] if want is None else [want])

    ctx = z3.Context()
    q = z3.Int("q", ctx)
    zheld = [(z3.BoolVal(h, ctx), z3.IntVal(p, ctx)) for h, p in held]
    s = z3.Solver(ctx=ctx)
    s.add(ports.lowest_free(ports.Z3(ctx), q, zheld, limit=z3.IntVal(limit, ctx),
                            xenstore=z3.BoolVal(xs, ctx)))
    if want is None:
        assert s.check() == z3.unsat
    else:
        assert s.check() == z3.sat and s.model()[q].as_long() == want
        s.add(q != want)
        assert s.check() == z3.unsat

    sheld = [("true" if h else "false", str(p)) for h, p in held]
    if xs:  # the SMT reading (encode.py) lists the xenstore port among the held ones
        sheld.insert(0, ("true", "1"))
    text = ports.lowest_free(ports.SMT, "q", sheld, limit=str(limit))
    s2 = z3.Solver(ctx=ctx)
    s2.from_string(f"(declare-const q Int) (assert {text})")
    if want is None:
        assert s2.check() == z3.unsat
    else:
        assert s2.check() == z3.sat
        assert s2.model()[z3.Int("q", ctx)].as_long() == want


def test_ports_is_independent_of_the_refimpl() -> None:
    tree = ast.parse((ROOT / "proofs" / "ports.py").read_text())
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert not [m for m in names if "refimpl" in m], names
