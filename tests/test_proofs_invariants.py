"""The induction proofs of proofs/invariants.py: every invariant of
spec/semantics.md §6 (as strengthened in spec/proofs-runtime.md) holds after every
operation, under both XSM policies; the proofs are not vacuous (a wrong relation
or the unstrengthened INV-2L-RANGE fails them); the booted state of any config
satisfies them (config-specific base case)."""

from __future__ import annotations

from typing import Any

import pytest
import z3
from hypothesis import HealthCheck, given, settings
from test_runtime_machine import systems

from evtchn_spec.proofs import invariants as I
from evtchn_spec.proofs import transition as T
from evtchn_spec.refimpl.runtime import arrays, boot_peers


@pytest.mark.parametrize("xsm", ["silo", "dummy"])
@pytest.mark.parametrize("op", T.OP_NAMES)
def test_every_invariant_is_inductive_for_every_op(op: str, xsm: str) -> None:
    vs = I.prove_step(op, xsm) + I.prove_step_props(op, xsm)
    bad = [v for v in vs if v.status != "proved"]
    assert not bad, bad


def test_boot_state_predicate_implies_the_invariants() -> None:
    assert all(v.status == "proved" for v in I.prove_base())


def test_inv_2l_range_as_stated_is_not_inductive() -> None:
    assert I.not_inductive_as_stated().status == "counterexample"


def test_a_wrong_close_breaks_symmetry(monkeypatch: pytest.MonkeyPatch) -> None:
    """If close forgot to unbind the peer, INV-SYMMETRIC would fail: the proof
    must notice."""
    def wrong(s: T.ZState, c: Any, p: Any) -> T.ZState:
        return T.free(s, c, p)
    monkeypatch.setattr(T, "_close_one", wrong)
    vs = I.prove_step("close", "silo", ("INV-SYMMETRIC",))
    assert vs[0].status == "counterexample"


def test_a_wrong_bind_breaks_static_peer(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bind that made its new port static would let two static ports join."""
    orig = T.step

    def wrong(s: T.ZState, op: str, *a: Any, **k: Any) -> T.Step:
        stp = orig(s, op, *a, **k)
        post = stp.post
        from dataclasses import replace
        return T.Step(replace(post, static=z3.Lambda(
            [d := z3.BitVec("dd", 16), p := z3.BitVec("pp", 32)],
            z3.Or(post.static[d, p], post.st[d, p] == T.st_val(T.INTERDOMAIN)))),
            stp.rc, stp.side, stp.lp)
    monkeypatch.setattr(T, "step", wrong)
    vs = I.prove_step("bind_interdomain", "dummy", ("INV-STATIC-PEER",))
    assert vs[0].status == "counterexample"


def _arr(res: Any) -> dict[str, dict[tuple[int, ...], int]]:
    a = arrays(res.state, boot_peers(res))
    a["fused"] = {}
    return a


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(res=systems())
def test_every_booted_config_satisfies_the_invariants(res: Any) -> None:
    vs = I.prove_concrete(_arr(res))
    assert all(v.status == "proved" for v in vs), [v for v in vs if v.status != "proved"]


@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
@given(res=systems())
def test_a_corrupted_state_is_caught(res: Any) -> None:
    a = _arr(res)
    d = min(k[0] for k in a["live"])
    a["st"][(d, 0)] = 0  # port 0 no longer reserved
    vs = I.prove_concrete(a, ("INV-RESERVED",))
    assert vs[0].status == "counterexample"
