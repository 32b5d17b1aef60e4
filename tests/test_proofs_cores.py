"""A counterexample's unsat core (proofs/certify.py core_facts), found over its
witness's cone (proofs/encode.py cone), is judged against the whole query: its facts
force the violation and the witness, and no one of them can go."""

from __future__ import annotations

from hypothesis import HealthCheck, given, note, settings
from test_boot_model import System
from test_proofs_agreement import systems

from evtchn_spec.grammar import load
from evtchn_spec.grammar.dump import to_dts
from evtchn_spec.proofs import certify, encode
from evtchn_spec.proofs.facts import build
from evtchn_spec.refimpl import rules as R
from evtchn_spec.refimpl.config import Config, xen_profile


def _answer(ob: encode.Obligation, keep: set[str], last: str) -> str:
    """check-sat of the whole query with only the facts in `keep`, and `last` for its
    violation."""
    facts = [f"(assert {a})" for n, a, _ in ob.facts.items() if n in keep]
    text = "\n".join([*ob.decls, *facts, *ob.defs, f"(assert {last})"])
    (ans,) = certify.eval_script(f"(set-logic {encode.LOGIC})\n{text}\n(check-sat)\n")
    return ans


def _judge(cfg: Config) -> int:
    """Every counterexample core of `cfg` is sound and minimal; how many there were."""
    obs = encode.obligations(build(cfg))
    n = 0
    for report in certify.run(obs, cores=False):
        for v in report.verdicts:
            cx = v.counterexample
            if cx is None:
                continue
            assert cx.witness, cx.message
            names = certify.core_facts(v.ob, True, 0, witness=cx.witness)
            assert names, cx.message
            names &= {n for n, _, _ in v.ob.facts.items()}
            what = f"{report.rule}: {cx.message}: {sorted(names)}"
            assert _answer(v.ob, names, f"(not {v.ob.violation})") == "unsat", what
            assert _answer(v.ob, names, f"(not {cx.witness})") == "unsat", what
            for f in names:  # minimal in the whole query, not only in the cone
                assert _answer(v.ob, names - {f}, f"(not {cx.witness})") == "sat", (f, what)
            n += 1
    return n


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(systems())
def test_a_core_forces_its_counterexample_and_no_fact_of_it_can_go(
        sys_: tuple[System, str, int]) -> None:
    s, xen, _ = sys_
    cfg = s.config(xen=xen, dialect="xen")
    note(to_dts(cfg.tree))
    _judge(cfg)


def test_the_busy_core_of_a_failing_channel_names_why_it_fails() -> None:
    """A channel that fails on one side still asks for its port on the other first;
    the core of "asks for a port an earlier channel holds" holds the cells of both
    channels and the cell that makes the second fail."""
    cfg = Config.from_tree(load("tests/data/proofs/busy-then-fails.dts"), xen_profile("4.17"))
    assert _judge(cfg) >= 1
    (busy,) = [r for r in certify.run(encode.obligations(build(cfg)))
               if r.rule == R.EVT_PORT_BUSY]
    (v,) = [v for v in busy.verdicts if v.counterexample is not None]
    assert v.counterexample is not None and v.core is not None
    assert "an earlier channel holds" in v.counterexample.message
    cells = {(c.node, c.what) for c in v.core if c.what == "port cell"}
    assert cells == {("/chosen/domU1/first", "port cell"), ("/chosen/domU2/first", "port cell"),
                     ("/chosen/domU1/second", "port cell"),
                     ("/chosen/domU2/second", "port cell")}, cells
