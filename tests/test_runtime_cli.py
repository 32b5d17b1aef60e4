"""`evtchn-spec run FILE TRACE.json`: exit codes, formats, bad traces as one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evtchn_spec.cli import main
from evtchn_spec.grammar.errors import InputError
from evtchn_spec.refimpl.runtime import OPS, parse_trace

DATA = Path(__file__).parent / "data"
PAIR = str(DATA / "xen" / "pair-basic.dts")


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_json_run_has_the_architecture_shape(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run_cli(capsys, "run", PAIR, str(DATA / "xen" / "pair-basic.trace.json"),
                         "--format", "json", "--dialect", "xen")
    doc = json.loads(out)
    assert rc == 0
    assert doc["format"] == 1 and doc["initial"]["outcome"] == "booted"
    assert [c["op"] for c in doc["calls"]][:2] == ["send", "send"]
    assert all({"caller", "op", "args", "rc", "changes", "upcalls"} <= set(c)
               for c in doc["calls"])
    assert set(doc["final"]) == {"format", "outcome", "domains"}


def test_text_run(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    t = tmp_path / "t.json"
    t.write_text('[{"caller": 1, "op": "send", "args": {"port": 10}}]')
    rc, out, _ = run_cli(capsys, "run", PAIR, str(t))
    assert rc == 0
    assert out.startswith("#0 d1 send(port=10) -> 0\n")
    assert "final:" in out


def test_boot_panic_exits_1_without_calls(capsys: pytest.CaptureFixture[str],
                                          tmp_path: Path) -> None:
    t = tmp_path / "t.json"
    t.write_text('{"calls": [{"caller": 1, "op": "send", "args": {"port": 10}}]}')
    rc, out, _ = run_cli(capsys, "run", str(DATA / "xen" / "port-reused.dts"), str(t),
                         "--format", "json")
    doc = json.loads(out)
    assert rc == 1 and doc["initial"]["outcome"] == "panic"
    assert doc["calls"] == [] and doc["final"] is None


@pytest.mark.parametrize(("text", "where", "what"), [
    ('[{"caller": 1, "op": "send", "args": {"port": 10}}', "1:51", "not JSON"),
    ('{"calls": [\n  {"caller": 1, "op": "sned"}]}', "2:23", "op must be one of"),
    ('[{"caller": 1, "op": "send",\n  "args": {"port": -1}}]', "2:20",
     "args.port must be an integer"),
    ('[{"caller": 1, "op": "send", "args": {"prot": 1}}]', "1:39", "takes no argument"),
    ('[{"caller": 1, "op": "send"}]', "1:2", "needs args.port"),
    ('[{"caller": 32752, "op": "ack"}]', "1:13", "caller must be a domid"),
    ('[{"caller": true, "op": "ack"}]', "1:13", "caller must be a domid"),
    ('{"format": 2, "calls": []}', "1:12", "format 2 is not supported"),
    ('{"cals": []}', "1:2", "unknown key"),
    ('[1]', "1:2", "not an object"),
    ('[{"caller": 1, "op": "alloc_unbound", "args": {"remote_dom": 65536}}]', "1:62",
     "0..65535"),
])
def test_bad_trace_is_one_located_line(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                       text: str, where: str, what: str) -> None:
    t = tmp_path / "trace.json"
    t.write_text(text)
    rc, out, err = run_cli(capsys, "run", PAIR, str(t))
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"{t}:{where}: "), err
    assert what in err


def test_missing_trace_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rc, _, err = run_cli(capsys, "run", PAIR, str(tmp_path / "none.json"))
    assert rc == 2 and err.startswith(f"{tmp_path / 'none.json'}:1:1: cannot read")


def test_calls_by_a_domain_that_does_not_run_are_not_made(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    t = tmp_path / "t.json"
    t.write_text(json.dumps([{"caller": 7, "op": "send", "args": {"port": 1}},
                             {"caller": 1, "op": "destroy"},
                             {"caller": 1, "op": "send", "args": {"port": 10}},
                             {"caller": 2, "op": "status", "args": {"dom": 1, "port": 0}}]))
    rc, out, _ = run_cli(capsys, "run", PAIR, str(t), "--format", "json")
    calls = json.loads(out)["calls"]
    assert rc == 0
    assert [c["rc"] for c in calls] == [None, 0, None, -3]
    assert {"dom": 1, "field": "domain", "from": "domU1", "to": None} in calls[1]["changes"]
    assert {"dom": 2, "port": 11, "field": "status", "from": "interdomain",
            "to": "unbound"} in calls[1]["changes"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 70000) | st.text(max_size=5),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(
        st.sampled_from(["caller", "op", "args", "port", "calls", "format", "x"]), c,
        max_size=3), max_leaves=12)
calls = st.fixed_dictionaries({"caller": st.integers(-1, 5),
                               "op": st.sampled_from([*OPS, "nope"]),
                               "args": st.dictionaries(st.sampled_from(
                                   ["port", "dom", "vcpu", "virq", "remote_dom",
                                    "remote_port", "x"]), st.integers(-1, 1 << 33),
                                   max_size=3)})


@given(st.one_of(json_values, st.lists(calls, max_size=4)), st.integers(0, 2))
def test_any_json_is_a_trace_or_one_located_error(doc: object, indent: int) -> None:
    text = json.dumps(doc, indent=indent or None)
    try:
        parsed = parse_trace(text, "t.json")
    except InputError as exc:
        msg = str(exc)
        assert msg.startswith("t.json:") and "\n" not in msg
        line, col = (int(x) for x in msg.split(":")[1:3])
        assert 1 <= line <= text.count("\n") + 1 and col >= 1
    else:
        assert isinstance(doc, (list, dict))
        for c in parsed:
            assert c.op in OPS and set(c.args) == {a.name for a in OPS[c.op].args}


def test_xsm_option_decides_domu_to_domu_allocation(capsys: pytest.CaptureFixture[str],
                                                   tmp_path: Path) -> None:
    t = tmp_path / "t.json"
    t.write_text('[{"caller": 1, "op": "alloc_unbound", "args": {"remote_dom": 2}}]')
    rcs = []
    for xsm in ("silo", "dummy"):
        rc, out, _ = run_cli(capsys, "run", PAIR, str(t), "--format", "json", "--xsm", xsm)
        assert rc == 0
        rcs.append(json.loads(out)["calls"][0]["rc"])
    assert rcs == [-1, 0]
