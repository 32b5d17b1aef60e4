"""The compact, streamed form of the proofs (FactBlock, rule_groups, run_groups, the
streamed certificate, batched Z3 scripts) must say exactly what the whole-list form
says: same queries, same answers, same certificate, same cores."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
import z3
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from test_boot_model import System
from test_proofs_agreement import systems

from evtchn_spec.grammar import load
from evtchn_spec.grammar.dump import to_dts
from evtchn_spec.proofs import certify, encode
from evtchn_spec.proofs.facts import Cite, build
from evtchn_spec.proofs.report import prove_config, public
from evtchn_spec.refimpl.config import Config, xen_profile

XEN = Path("tests/data/xen")
FILES = [XEN / "pair-basic.dts", XEN / "xenstore-nodom0.dts", XEN / "seed-dialect-dom0.dts",
         Path("tests/data/boot/many-problems.dts"), Path("tests/data/proofs/order-dependent.dts"),
         Path("examples/dom0less-three-domus.dts")]
NAMED = re.compile(r"\(assert \(! (.*) :named ([^ ()]+)\)\)")


def _cfg(path: Path) -> Config:
    return Config.from_tree(load(str(path)), xen_profile("4.17"), "auto")


def _answer(script: str) -> str:
    ctx = z3.Context()  # kept alive while Z3 runs the script
    out = z3.Z3_eval_smtlib2_string(ctx.ref(), script)
    return out.strip().splitlines()[0]


def _check_named_matches_unnamed(ob: encode.Obligation) -> None:
    """The named text is the unnamed one with each fact wrapped, in the same order,
    names and places as the facts; both parse in Z3 and give the same answer."""
    plain = ob.text().split("\n")
    named = ob.text(named=True).split("\n")
    assert len(plain) == len(named)
    facts = ob.facts.items()
    k = 0
    for p, n in zip(plain, named, strict=True):
        m = NAMED.fullmatch(n)
        if m is None:
            assert p == n
            continue
        assert p == f"(assert {m.group(1)})"
        assert (m.group(2), m.group(1)) == facts[k][:2]
        k += 1
    assert k == len(facts) == len(ob.facts.names) == len(ob.facts.cites)
    head = f"(set-logic {encode.LOGIC})\n"
    a = _answer(head + ob.text() + "(check-sat)\n")
    b = _answer("(set-option :produce-unsat-cores true)\n" + head + ob.text(named=True)
                + "(check-sat)\n")
    assert a == b and a in ("sat", "unsat")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(systems())
def test_named_and_unnamed_queries_agree(sys_: tuple[System, str, int]) -> None:
    s, xen, _ = sys_
    cfg = s.config(xen=xen, dialect="xen")
    note(to_dts(cfg.tree))
    for ob in encode.obligations(build(cfg)):
        _check_named_matches_unnamed(ob)


@pytest.mark.parametrize("path", FILES, ids=str)
def test_named_and_unnamed_queries_agree_on_files(path: Path) -> None:
    obs = encode.obligations(build(_cfg(path)))
    assert obs
    for ob in obs:
        _check_named_matches_unnamed(ob)


ASSERTIONS = st.text(st.characters(blacklist_characters="\n\r", codec="ascii"), max_size=20)


@given(st.lists(st.tuples(st.from_regex(r"[a-z]{1,4}_[0-9]{1,3}", fullmatch=True),
                          ASSERTIONS, st.booleans()), max_size=8))
def test_fact_block_round_trips(raw: list[tuple[str, str, bool]]) -> None:
    cite = Cite("f.dts", 1, 2, "/n", "port cell")
    items = [(n, a, cite if c else None) for n, a, c in raw]
    block = encode.fact_block(items)
    assert block.items() == items
    assert block.lines(False) == [f"(assert {a})" for _, a, _ in items]
    assert block.lines(True) == [f"(assert (! {a} :named {n}))" for n, a, _ in items]


def test_fact_block_refuses_a_multi_line_fact() -> None:
    with pytest.raises(ValueError):
        encode.fact_block([("x", "(= a\n b)", None)])


@pytest.mark.parametrize("path", FILES, ids=str)
def test_rule_groups_are_the_obligations_in_rule_order(path: Path) -> None:
    facts = build(_cfg(path))
    groups = [(r, list(g)) for r, g in encode.rule_groups(facts)]
    rules = [r for r, _ in groups]
    rank = {r: i for i, r in enumerate(encode.RULE_ORDER)}
    assert rules == sorted(set(rules), key=rank.__getitem__)  # each rule once, in order
    assert all(g and all(o.rule == r for o in g) for r, g in groups)
    flat = [o.text() for _, g in groups for o in g]
    assert flat == [o.text() for o in encode.obligations(build(_cfg(path)))]


@pytest.mark.parametrize("path", FILES, ids=str)
def test_streamed_certificate_is_the_whole_list_certificate(path: Path) -> None:
    cfg = _cfg(path)
    obs = encode.obligations(build(cfg))
    whole = certify.certificate(obs, certify.run(obs), cfg.tree.source)
    fh = io.BytesIO()
    doc = prove_config(cfg, 0.0, False, "off", fh)
    assert fh.getvalue().decode() == whole
    assert doc["queries"] == len(obs)
    # the report does not depend on whether a certificate is written
    assert _untimed(public(doc)) == _untimed(public(prove_config(cfg, 0.0, False, "off")))


def _untimed(d: object) -> object:
    if isinstance(d, dict):
        return {k: _untimed(v) for k, v in d.items() if k != "seconds"}
    if isinstance(d, list):
        return [_untimed(x) for x in d]
    return d


def _verdicts(reports: list[certify.RuleReport]) -> list[tuple[str, str, str, object, object]]:
    return [(r.rule, v.ob.scope, v.answer,
             v.counterexample.as_json() if v.counterexample else None,
             [c.as_json() for c in v.core] if v.core is not None else None)
            for r in reports for v in r.verdicts]


@pytest.mark.parametrize("path", FILES, ids=str)
def test_batched_released_run_matches_one_script_per_rule(
        path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _cfg(path)
    whole = certify.run(encode.obligations(build(cfg)), explain=True)
    monkeypatch.setattr(certify, "BATCH_CHARS", 1)  # one query per Z3 script
    seen: list[str] = []
    streamed = certify.run_groups(encode.rule_groups(build(cfg)), explain=True,
                                  done=lambda r: seen.append(r.rule), release=True)
    assert _verdicts(streamed) == _verdicts(whole)
    assert seen == [r.rule for r in whole]
    for r in streamed:
        for v in r.verdicts:
            with pytest.raises(RuntimeError):
                v.ob.text()


def test_timeout_in_a_batch_stays_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    """A query Z3 gives up on, in any batch, is reported unknown, never proved."""
    real = certify.eval_script
    monkeypatch.setattr(certify, "BATCH_CHARS", 1)
    monkeypatch.setattr(certify, "WORKERS_MAX", 1)  # calls in batch order
    calls: list[int] = []

    def flaky(script: str) -> list[str]:
        calls.append(1)
        ans = real(script)
        return ["unknown" if len(calls) == 2 else a for a in ans]

    monkeypatch.setattr(certify, "eval_script", flaky)
    reports = certify.run_groups(encode.rule_groups(build(_cfg(XEN / "pair-basic.dts"))))
    answers = [v.answer for r in reports for v in r.verdicts]
    assert len(calls) == len(answers) >= 2
    assert answers[1] == "unknown" and answers.count("unknown") == 1
    assert any(r.status == "unknown" for r in reports)


@pytest.mark.parametrize("path", FILES, ids=str)
def test_verdicts_do_not_depend_on_the_number_of_threads(
        path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches decided side by side give the verdicts, models and cores of one thread
    (each batch asks Z3 in contexts of its own)."""
    monkeypatch.setattr(certify, "BATCH_CHARS", 2000)  # several batches per rule
    runs = []
    for n in (1, 3):
        monkeypatch.setattr(certify, "workers", lambda n=n: n)
        runs.append(_verdicts(certify.run_groups(encode.rule_groups(build(_cfg(path))),
                                                 explain=True)))
    assert runs[0] == runs[1]
