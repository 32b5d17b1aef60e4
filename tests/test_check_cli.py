"""`evtchn-spec check` and `boot` on DTS files: formats, exit codes, locations,
colour, bad input (never a traceback)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evtchn_spec.cli import main

DATA = Path(__file__).resolve().parent / "data" / "boot"
MANY = DATA / "many-problems.dts"
OK = DATA / "three-domains-ok.dts"
NONE = DATA / "no-evtchn.dts"


def line_of(path: Path, needle: str) -> int:
    """1-based line of the first line containing `needle`."""
    for i, text in enumerate(path.read_text().splitlines(), 1):
        if needle in text:
            return i
    raise AssertionError(needle)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_check_reports_every_problem_with_locations(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "check", str(MANY), "--format", "json")
    assert rc == 1
    doc = json.loads(out)
    assert doc["format"] == 1 and doc["verdict"] == "violations"
    rules = [f["rule"] for f in doc["findings"]]
    # one finding for the skipped pair, naming both nodes
    assert rules.count("XEN-COMPAT") == 1
    for r in ("DOM-XENSTORE", "EVT-PORT-RANGE", "XEN-SEED-MIX", "XEN-PROP-EXTRA"):
        assert r in rules
    by_rule = {f["rule"]: f for f in doc["findings"]}
    rng = by_rule["EVT-PORT-RANGE"]
    assert rng["severity"] == "error"
    first = rng["locations"][0]
    assert set(first) == {"file", "line", "column", "end_line", "end_column", "node"}
    assert first["line"] == line_of(MANY, "<1024 &b1>")
    assert first["node"] == "/chosen/domU1/evtchn@1"
    assert {lc["node"] for lc in rng["locations"]} >= {"/chosen/domU1/evtchn@1",
                                                      "/chosen/domU2/evtchn@1"}
    assert by_rule["DOM-XENSTORE"]["locations"][0]["line"] == line_of(MANY, '"enabled"')
    assert {lc["node"] for lc in by_rule["XEN-COMPAT"]["locations"]} == {
        "/chosen/domU1/evtchn@2", "/chosen/domU2/evtchn@2"}
    extra = by_rule["XEN-PROP-EXTRA"]
    assert extra["severity"] == "warning"
    assert extra["locations"][0]["line"] == line_of(MANY, "<6 &b3 7>")
    assert all(f["hint"] for f in doc["findings"])
    assert doc["dialect"] == "xen"


def test_check_text_is_compiler_style_without_colour_off_a_tty(
        capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "check", str(MANY))
    assert rc == 1
    assert "\033[" not in out
    want = f"{MANY}:{line_of(MANY, '<1024 &b1>')}:"
    assert any(ln.startswith(want) and "error[EVT-PORT-RANGE]" in ln for ln in out.splitlines())
    assert "= fix:" in out and "dialect: xen" in out


def test_colour_on_a_tty_unless_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from evtchn_spec.render import report

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    assert report.use_colour(Tty())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not report.use_colour(Tty())
    assert not report.use_colour(io.StringIO())


def test_sarif(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "check", str(MANY), "--format", "sarif")
    assert rc == 1
    doc = json.loads(out)
    assert doc["version"] == "2.1.0"
    run0 = doc["runs"][0]
    ids = [r["id"] for r in run0["tool"]["driver"]["rules"]]
    for res in run0["results"]:
        assert ids[res["ruleIndex"]] == res["ruleId"]
        region = res["locations"][0]["physicalLocation"]["region"]
        assert region["startLine"] >= 1
    assert len(run0["results"]) == 6


def test_ok_tree_and_tree_without_channels(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "check", str(OK), "--format", "json")
    assert rc == 0 and json.loads(out)["verdict"] == "ok"
    rc, out, _ = run(capsys, "check", str(NONE))
    assert rc == 0 and "no event channels" in out
    rc, out, _ = run(capsys, "check", str(NONE), "--format", "json")
    doc = json.loads(out)
    assert rc == 0 and doc["findings"] == [] and doc["dialect"] == "none"


def test_strict_and_policy(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    loop = tmp_path / "loop.dts"
    # domU3 gets a loopback pair (a warning), domU2's second endpoint is dropped
    # (XEN-PEER-ASYMMETRIC: an error)
    text = OK.read_text().replace("c1: evtchn@d {\n\t\t\t\tcompatible = \"xen,evtchn-v1\";\n"
                        "\t\t\t\txen,evtchn = <13 &b2>;",
                        "c1: evtchn@d {\n\t\t\t\tcompatible = \"xen,evtchn-v1\";\n"
                        "\t\t\t\txen,evtchn = <13 &c2>;\n\t\t\t};\n\t\t\tc2: evtchn@e {\n"
                        "\t\t\t\tcompatible = \"xen,evtchn-v1\";\n"
                        "\t\t\t\txen,evtchn = <14 &c1>;")
    loop.write_text(text.replace("xen,evtchn = <12 &c1>;", "xen,evtchn = <12 &a1>;"))
    rc, out, _ = run(capsys, "check", str(loop), "--format", "json")
    doc = json.loads(out)
    rules = {f["rule"] for f in doc["findings"]}
    assert "EVT-LOOPBACK" in rules and "XEN-PEER-ASYMMETRIC" in rules
    assert rc == 1
    policy = tmp_path / "p.toml"
    policy.write_text('[[allow]]\na = "domU1"\nb = "domU2"\n')
    rc, out, _ = run(capsys, "check", str(OK), "--policy", str(policy), "--format", "json")
    doc = json.loads(out)
    denied = [f for f in doc["findings"] if f["rule"] == "POL-DENIED"]
    assert rc == 1 and len(denied) == 1 and "domU3" in denied[0]["message"]
    policy.write_text('default = "allow"\n')
    rc, _, _ = run(capsys, "check", str(OK), "--policy", str(policy))
    assert rc == 0


def test_strict_flag(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    warn = tmp_path / "warn.dts"
    warn.write_text(OK.read_text().replace("<10 &b1>", "<10 &b1 99>"))
    rc, _, _ = run(capsys, "check", str(warn))
    assert rc == 0
    rc, out, _ = run(capsys, "check", str(warn), "--strict", "--format", "json")
    assert rc == 1 and {f["severity"] for f in json.loads(out)["findings"]} == {"error"}


def test_boot_json_and_text(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "boot", str(OK), "--format", "json")
    assert rc == 0
    doc = json.loads(out)
    assert doc["outcome"] == "booted"
    assert [p["port"] for p in doc["domains"]["2"]["ports"]] == [11, 12]
    rc, out, _ = run(capsys, "boot", str(MANY), "--format", "json")
    doc = json.loads(out)
    assert rc == 1 and doc["outcome"] == "panic"
    assert doc["panic"] == "At the moment, Xenstore support requires dom0 to be present"
    rc, out, _ = run(capsys, "boot", str(OK))
    assert rc == 0 and "alloc_static_evtchn" in out and "booted" in out


@pytest.mark.parametrize("argv", [
    ["check", "/nonexistent/x.dts"],
    ["boot", "/nonexistent/x.dts"],
    ["table", "/nonexistent/x.dts"],
    ["check", str(OK), "--xen", "3.0"],
])
def test_bad_input_is_one_line_exit_2(capsys: pytest.CaptureFixture[str],
                                      argv: list[str]) -> None:
    rc, _, err = run(capsys, *argv)
    assert rc == 2
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_bad_dts_and_bad_policy_exit_2(capsys: pytest.CaptureFixture[str],
                                       tmp_path: Path) -> None:
    bad = tmp_path / "bad.dts"
    bad.write_text("/dts-v1/;\n/ { chosen { x = <1 ; }; };\n")
    rc, _, err = run(capsys, "check", str(bad))
    assert rc == 2 and "Traceback" not in err
    policy = tmp_path / "p.toml"
    policy.write_text("[[allow]\n")
    rc, _, err = run(capsys, "check", str(OK), "--policy", str(policy))
    assert rc == 2 and "Traceback" not in err


def test_graph(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "graph", str(OK))
    assert rc == 0 and out.startswith("graph evtchn {") and "d1 -- d2" in out
    rc, out, _ = run(capsys, "graph", str(OK), "--format", "mermaid")
    assert rc == 0 and out.startswith("graph LR")
