"""`evtchn-spec diff --impl CMD`: the oracle agrees with itself, and a deliberately
wrong implementation (tests/data/oracle/wrong_impl.py) is caught with the exact
case, domain, port and field; plus the comparison itself, property-based."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evtchn_spec.cli import main as cli_main
from evtchn_spec.oracle.compare import DIFF_PROTOCOL, compare_boot, compare_run

DATA = Path(__file__).resolve().parent / "data"
SELF = shlex.join([sys.executable, "-m", "evtchn_spec.cli"])
WRONG = shlex.join([sys.executable, str(DATA / "oracle" / "wrong_impl.py")])


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli_main(list(argv))
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three vectors: a boot with a trace, a panic, and dom0 with xenstore (traced)."""
    d = tmp_path_factory.mktemp("vectors")
    srcs = [DATA / "xen" / f"{n}.dts" for n in ("pair-basic", "port-reused", "xenstore-dom0")]
    rc, _, err = cli("vectors", str(d), *[a for s in srcs for a in ("--from", str(s))],
                     "--suite", "picked", "--dialect", "xen")
    assert rc == 0, err
    return d


def test_the_oracle_agrees_with_itself(small: Path) -> None:
    rc, out, _ = cli("diff", "--impl", SELF, "--vectors", str(small))
    assert rc == 0, out
    assert out.strip().splitlines()[-1].endswith("3 agree, 0 differ (0 differences), "
                                                 "0 gave no answer")


def test_wrong_pending_bit_is_reported_exactly(small: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WRONG_IMPL_BUG", "no-pending-b")
    rc, out, _ = cli("diff", "--impl", WRONG, "--vectors", str(small))
    assert rc == 1
    lines = out.splitlines()
    assert "DIFF picked/pair-basic boot domain 2 port 11: pending: expected true, got false" \
        in lines
    assert "DIFF picked/pair-basic run initial domain 2 port 11: pending: expected true, " \
        "got false" in lines
    # the panic case has no ports: nothing to get wrong there
    assert not any("port-reused" in ln for ln in lines)
    rc, out, _ = cli("diff", "--impl", WRONG, "--vectors", str(small), "--format", "json")
    doc = json.loads(out)
    assert doc["summary"]["differ"] >= 1
    (case,) = [c for c in doc["cases"] if c["case"] == "picked/pair-basic"]
    assert {"case": "picked/pair-basic", "doc": "boot", "where": "", "domain": "2", "port": 11,
            "field": "pending", "expected": True, "got": False} in case["differences"]


def test_wrong_rc_is_reported_with_its_call(small: Path, monkeypatch: pytest.MonkeyPatch
                                            ) -> None:
    monkeypatch.setenv("WRONG_IMPL_BUG", "failed-rc")
    rc, out, _ = cli("diff", "--impl", WRONG, "--vectors", str(small))
    assert rc == 1
    diffs = [ln for ln in out.splitlines() if ln.startswith("DIFF")]
    assert "DIFF picked/pair-basic run call 5 (send by d1): rc: expected -22, got 0" in diffs


def test_crash_and_timeout_are_errors_not_agreement(small: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WRONG_IMPL_BUG", "crash")
    rc, out, _ = cli("diff", "--impl", WRONG, "--vectors", str(small), "--suite", "picked")
    assert rc == 1
    assert "ERROR picked/pair-basic: the implementation gave no answer: boot: exited 3: " \
        "wrong_impl: simulated crash" in out.splitlines()
    monkeypatch.setenv("WRONG_IMPL_BUG", "hang")
    rc, out, _ = cli("diff", "--impl", WRONG, "--vectors", str(small), "--timeout", "0.5",
                     "-j", "3")
    assert rc == 1 and out.count("timed out after 0.5 s") == 3


def test_impl_not_runnable_and_bad_arguments_exit_2(small: Path, tmp_path: Path) -> None:
    rc, out, err = cli("diff", "--impl", str(tmp_path / "missing"), "--vectors", str(small))
    assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1
    rc, _, err = cli("diff", "--impl", SELF, "--vectors", str(tmp_path))
    assert rc == 2 and err.startswith(f"{tmp_path}: not a vectors directory")
    rc, _, err = cli("diff", "--impl", SELF)
    assert rc == 2 and "nothing to compare" in err


def test_files_and_random_configs(tmp_path: Path) -> None:
    dts = tmp_path / "mine.dts"
    dts.write_bytes((DATA / "xen" / "dom0-loopback.dts").read_bytes())
    rc, out, _ = cli("diff", "--impl", SELF, str(dts), "--random", "2", "--seed", "5")
    assert rc == 0, out
    assert "3 cases" in out.splitlines()[-1]


# -- the comparison, for all documents ----------------------------------------------------

port_st = st.fixed_dictionaries({
    "status": st.sampled_from(["unbound", "interdomain"]),
    "remote_dom": st.integers(0, 5), "remote_port": st.integers(1, 4095),
    "static": st.booleans(), "pending": st.booleans(), "masked": st.booleans(),
    "vcpu": st.integers(0, 1)})
domain_st = st.dictionaries(st.integers(1, 4095), port_st, max_size=4).map(
    lambda ports: {"name": "d", "ports": [dict(p, port=k) for k, p in sorted(ports.items())]})
boot_st = st.one_of(
    st.dictionaries(st.sampled_from(["0", "1", "2", "3"]), domain_st, max_size=3).map(
        lambda d: {"format": 1, "outcome": "booted", "domains": d}),
    st.builds(lambda e, p: {"format": 1, "outcome": "panic", "error": e, "panic": p,
                            "node": "/x"}, st.one_of(st.none(), st.text(max_size=5)),
              st.text(min_size=1, max_size=5)))
NORMATIVE = ("status", "remote_dom", "remote_port", "static", "pending", "masked")


@given(boot_st)
def test_a_document_agrees_with_itself_and_informative_fields_do_not_count(
        doc: dict[str, Any]) -> None:
    assert compare_boot(doc, copy.deepcopy(doc), DIFF_PROTOCOL, case="c") == []
    other = copy.deepcopy(doc)
    other["node"] = "/elsewhere"
    other["rule"] = "X"
    for dom in (other.get("domains") or {}).values():
        dom["name"] = "renamed"
        for p in dom["ports"]:
            p["vcpu"] = 7
    assert compare_boot(doc, other, DIFF_PROTOCOL, case="c") == []


@given(boot_st, st.data())
def test_one_changed_normative_field_is_exactly_one_difference(doc: dict[str, Any],
                                                               data: st.DataObject) -> None:
    slots = [(d, i) for d, dom in (doc.get("domains") or {}).items()
             for i in range(len(dom["ports"]))]
    other = copy.deepcopy(doc)
    if not slots:
        other["outcome"] = "panic" if doc["outcome"] == "booted" else "booted"
        (d,) = compare_boot(doc, other, DIFF_PROTOCOL, case="c")
        assert d.field == "outcome"
        return
    domid, i = data.draw(st.sampled_from(slots))
    f = data.draw(st.sampled_from(NORMATIVE))
    port = other["domains"][domid]["ports"][i]
    port[f] = (not port[f]) if isinstance(port[f], bool) else \
        ("unbound" if port[f] == "interdomain" else "interdomain") if f == "status" else \
        port[f] + 1
    (d,) = compare_boot(doc, other, DIFF_PROTOCOL, case="c")
    assert (d.domain, d.port, d.field) == (domid, port["port"], f)
    assert d.expected == doc["domains"][domid]["ports"][i][f] and d.got == port[f]


def test_run_compares_rc_port_and_changes_but_not_upcalls() -> None:
    doc = json.loads((DATA / "xen" / "pair-basic.run.json").read_text())
    assert compare_run(doc, copy.deepcopy(doc), DIFF_PROTOCOL, case="c") == []
    other = copy.deepcopy(doc)
    for c in other["calls"]:
        c["upcalls"] = [{"dom": 9, "vcpu": 9}]
        c["errno"] = "WHATEVER"
    assert compare_run(doc, other, DIFF_PROTOCOL, case="c") == []
    other["calls"][1]["changes"][0]["to"] = False
    texts = [d.text() for d in compare_run(doc, other, DIFF_PROTOCOL, case="c")]
    assert texts == [
        "c run call 1 (send by d2) domain 1 port 10: change pending: "
        'expected "false -> true", got (absent)',
        "c run call 1 (send by d2) domain 1 port 10: change pending: "
        'expected (absent), got "false -> false"']
    other = copy.deepcopy(doc)
    del other["calls"][-1]
    assert [d.field for d in compare_run(doc, other, DIFF_PROTOCOL, case="c")] == \
        ["number of calls"]


def test_env_is_clean() -> None:
    assert "WRONG_IMPL_BUG" not in os.environ
