"""Output for CI and editors: `check --format github`, end positions in the JSON and
SARIF, per-rule severities (-W/-E/--no), `fix --diff`, and the pre-commit hook."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evtchn_spec.cli import main
from evtchn_spec.cli.precommit import split
from evtchn_spec.grammar import load
from evtchn_spec.refimpl import rules as R
from evtchn_spec.refimpl.check import check
from evtchn_spec.refimpl.config import Config, xen_profile
from evtchn_spec.render import report

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "tests" / "data" / "rules"
MANY = ROOT / "tests" / "data" / "boot" / "many-problems.dts"
OK = ROOT / "examples" / "dom0less-three-domus.dts"
BUSY = RULES / "EVT-PORT-BUSY.fails.dts"
EXTRA = RULES / "XEN-PROP-EXTRA.fails.dts"  # one warning, no error

COMMAND = re.compile(r"::(error|warning)(?: (?P<props>[^:]*))?::(?P<msg>.*)")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def unescape(text: str) -> str:
    return re.sub(r"%(25|0D|0A|3A|2C)",
                  lambda m: {"25": "%", "0D": "\r", "0A": "\n", "3A": ":", "2C": ","}[m[1]],
                  text)


def commands(out: str) -> list[tuple[str, dict[str, str], str]]:
    got = []
    for line in out.splitlines():
        m = COMMAND.fullmatch(line)
        assert m, line
        props = dict(p.split("=", 1) for p in (m["props"] or "").split(",") if p)
        got.append((m[1], {k: unescape(v) for k, v in props.items()}, unescape(m["msg"])))
    return got


# -- github ---------------------------------------------------------------------------

def test_github_one_command_per_finding(capsys: pytest.CaptureFixture[str]) -> None:
    rc_json, out_json, _ = run(capsys, "check", str(MANY), "--format", "json")
    rc, out, _ = run(capsys, "check", str(MANY), "--format", "github")
    assert rc == rc_json == 1
    findings = json.loads(out_json)["findings"]
    cmds = commands(out)
    assert len(cmds) == len(findings) > 3
    for (kind, props, msg), f in zip(cmds, findings, strict=True):
        assert kind == f["severity"]
        first = f["locations"][0]
        assert props == {"file": first["file"], "line": str(first["line"]),
                         "col": str(first["column"]), "endLine": str(first["end_line"]),
                         "endColumn": str(first["end_column"]), "title": f["rule"]}
        assert msg.startswith(f["message"]) and f"fix: {f['hint']}" in msg
        for other in f["locations"][1:]:
            assert f"also: {other['file']}:{other['line']}:{other['column']}" in msg
    assert {c[0] for c in cmds} == {"error", "warning"}


def test_github_ok_tree_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "check", str(OK), "--format", "github") == (0, "", "")


@given(st.text())
def test_github_escaping_round_trips(text: str) -> None:
    data, prop = report.github_data(text), report.github_property(text)
    assert "\n" not in data and "\r" not in data
    assert not set(prop) & set(":,\r\n")
    assert unescape(data) == text and unescape(prop) == text


# -- end positions --------------------------------------------------------------------

def all_failing_cases() -> list[Path]:
    return sorted(RULES.glob("*.fails.dts"))


def test_json_locations_keep_their_keys_and_end_where_the_text_ends(
        capsys: pytest.CaptureFixture[str]) -> None:
    checked = 0
    for case in all_failing_cases():
        head = case.read_text()
        opts = re.search(r"/\* evtchn-spec: (.*?) \*/", head)
        rc, out, _ = run(capsys, "check", str(case), "--format", "json",
                         *(opts[1].split() if opts else []))
        assert rc in (0, 1)
        lines = head.split("\n")
        for f in json.loads(out)["findings"]:
            for lc in f["locations"]:
                assert list(lc) == ["file", "line", "column", "end_line", "end_column", "node"]
                start, end = (lc["line"], lc["column"]), (lc["end_line"], lc["end_column"])
                assert end > start  # a source text place is never empty
                if start[0] == end[0]:
                    text = lines[start[0] - 1][start[1] - 1:end[1] - 1]
                else:
                    text = lines[end[0] - 1][:end[1] - 1]
                assert text.strip(), (case.name, lc)
                assert text.endswith((";", "}")) or re.fullmatch(r"[\w&{}/@,.-]+", text)
                checked += 1
    assert checked > 40


def test_sarif_regions_have_ends(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "check", str(MANY), "--format", "json")
    _, sarif, _ = run(capsys, "check", str(MANY), "--format", "sarif")
    locs = [lc for f in json.loads(out)["findings"] for lc in f["locations"]]
    regions = [loc["physicalLocation"]["region"] for r in json.loads(sarif)["runs"][0]["results"]
               for loc in r["locations"]]
    assert [(g["endLine"], g["endColumn"]) for g in regions] == [
        (lc["end_line"], lc["end_column"]) for lc in locs]


def test_dtb_locations_end_where_they_start(capsys: pytest.CaptureFixture[str],
                                            tmp_path: Path) -> None:
    dtb = tmp_path / "busy.dtb"
    subprocess.run(["dtc", "-q", "-I", "dts", "-O", "dtb", "-o", str(dtb), str(BUSY)],
                   check=True)
    rc, out, _ = run(capsys, "check", str(dtb), "--format", "json")
    assert rc == 1
    for f in json.loads(out)["findings"]:
        for lc in f["locations"]:
            assert (lc["end_line"], lc["end_column"]) == (lc["line"], lc["column"])


# -- -W / -E / --no -------------------------------------------------------------------

def test_severity_options(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "check", str(EXTRA), "--format", "json")
    assert rc == 0 and [f["severity"] for f in json.loads(out)["findings"]] == ["warning"]
    rc, out, _ = run(capsys, "check", str(EXTRA), "--format", "json", "-E", "XEN-PROP-EXTRA")
    doc = json.loads(out)
    assert rc == 1 and doc["verdict"] == "violations"
    assert [f["severity"] for f in doc["findings"]] == ["error"]
    # the last option for a rule wins; rule IDs are matched ignoring case
    rc, out, _ = run(capsys, "check", str(EXTRA), "--format", "json", "-E", "XEN-PROP-EXTRA",
                     "--no", "xen-prop-extra")
    assert rc == 0 and json.loads(out)["findings"] == []
    # --strict first, then the rule options: everything counts but this one
    rc, _, _ = run(capsys, "check", str(EXTRA), "--strict")
    assert rc == 1
    rc, out, _ = run(capsys, "check", str(EXTRA), "--strict", "-W", "XEN-PROP-EXTRA")
    assert rc == 0 and "0 error(s), 1 warning(s)" in out
    # an error Xen panics on can be silenced in the report; boot still panics
    rc, out, _ = run(capsys, "check", str(BUSY), "--no", "EVT-PORT-BUSY", "--format", "json")
    assert rc == 0 and json.loads(out)["verdict"] == "ok"
    assert run(capsys, "boot", str(BUSY))[0] == 1


@pytest.mark.parametrize("flag", ["-W", "-E", "--no"])
def test_unknown_rule_is_a_usage_error(capsys: pytest.CaptureFixture[str], flag: str) -> None:
    rc, out, err = run(capsys, "check", "no-such-file.dts", flag, "XEN-NOPE")
    assert rc == 2 and out == ""
    assert err == (f"evtchn-spec: {flag} XEN-NOPE: unknown rule ID (the IDs are in "
                   "spec/binding.md, e.g. XEN-PEER-ASYMMETRIC)\n")


ACTIONS = st.lists(st.tuples(st.sampled_from(["warning", "error", "off"]),
                             st.sampled_from([r.id for r in R.all_rules()])), max_size=8)


@settings(max_examples=60, deadline=None)
@given(ACTIONS, st.booleans())
def test_overrides_follow_the_documented_order(actions: list[tuple[str, str]],
                                               strict: bool) -> None:
    cfg = Config.from_tree(load(str(MANY)), xen_profile("4.17"), "auto")
    plain = check(cfg)
    res = check(cfg, strict=strict, overrides=actions)
    last = dict((rid, a) for a, rid in actions)
    want = []
    for f in plain.findings:
        sev = "error" if strict else f.severity
        sev = last.get(f.rule, sev)
        if sev != "off":
            want.append((f.rule, f.message, sev))
    assert sorted((f.rule, f.message, f.severity) for f in res.findings) == sorted(want)
    assert res.verdict() == ("violations" if any(s == "error" for *_, s in want) else "ok")


# -- fix --diff -------------------------------------------------------------------------

def test_fix_diff_applies_to_the_fixed_file(capsys: pytest.CaptureFixture[str],
                                           tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "w"
    work.mkdir()
    shutil.copy(BUSY, work / "busy.dts")
    monkeypatch.chdir(work)
    rc_fix, fixed, _ = run(capsys, "fix", "busy.dts")
    rc, diff, err = run(capsys, "fix", "busy.dts", "--diff")
    assert rc == rc_fix == 0 and "port 6 -> 1" in err
    assert diff.startswith("--- a/busy.dts\n+++ b/busy.dts\n@@ ")
    res = subprocess.run(["patch", "-p1", "--dry-run", "-o", "-"], input=diff,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert fixed in res.stdout  # patch prints its own line first
    # with -o the diff is what is written; the input is untouched
    rc, out, _ = run(capsys, "fix", "./busy.dts", "--diff", "-o", "fix.patch")
    assert rc == 0 and out == ""
    assert (work / "fix.patch").read_text() == diff
    assert (work / "busy.dts").read_text() == BUSY.read_text()


def test_fix_diff_of_a_certified_tree_is_empty(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run(capsys, "fix", str(OK), "--diff")
    assert rc == 0 and out == "" and "nothing to change" in err


# -- pre-commit -------------------------------------------------------------------------

def parse_manifest(text: str) -> list[dict[str, object]]:
    """The YAML subset the hook manifest uses (a list of mappings of plain or
    single-quoted scalars and flow lists); anything else fails the test."""
    hooks: list[dict[str, object]] = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = re.fullmatch(r"(- |  )([a-z_]+): (.+)", line)
        assert m, line
        if m[1] == "- ":
            hooks.append({})
        key, raw = m[2], m[3]
        value: object
        if raw.startswith("["):
            value = [v.strip() for v in raw.strip("[]").split(",")]
        elif raw.startswith("'"):
            assert raw.endswith("'")
            value = raw[1:-1].replace("''", "'")
        else:
            value = raw
        hooks[-1][key] = value
    return hooks


def test_pre_commit_manifest_runs_check(tmp_path: Path) -> None:
    text = (ROOT / ".pre-commit-hooks.yaml").read_text()
    hooks = parse_manifest(text)
    try:
        import yaml  # type: ignore[import-untyped]
    except ImportError:
        yaml = None
    if yaml is not None:  # the full parser, when there is one, reads the same
        assert yaml.safe_load(text) == hooks
    (hook,) = hooks
    assert hook["id"] == "evtchn-spec-check" and hook["language"] == "python"
    files = re.compile(str(hook["files"]))
    for name in ("a.dts", "b/c.dtsi", "board.dtb"):
        assert files.search(name)
    for name in ("a.dts.bak", "a.c", "dts"):
        assert not files.search(name)
    entry = str(hook["entry"]).split()
    assert entry[0] == "python"
    bad = tmp_path / "busy.dts"
    shutil.copy(BUSY, bad)
    cmd = [sys.executable, *entry[1:]]
    ok = subprocess.run([*cmd, str(OK)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    both = subprocess.run([*cmd, "--format", "github", str(OK), str(bad)],
                          capture_output=True, text=True)
    assert both.returncode == 1
    assert both.stdout.startswith(f"::error file={bad},line=") and "EVT-PORT-BUSY" in both.stdout
    none = subprocess.run([*cmd, "--strict"], capture_output=True, text=True)
    assert none.returncode == 2 and len(none.stderr.splitlines()) == 1


def test_hook_splits_options_from_files() -> None:
    assert split(["-W", "X", "--strict", "a.dts", "b.DTB"]) == (["-W", "X", "--strict"],
                                                                ["a.dts", "b.DTB"])
    assert split(["a.dtsi"]) == ([], ["a.dtsi"])
