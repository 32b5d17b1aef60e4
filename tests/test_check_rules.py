"""Every rule ID of refimpl/rules.py has two fixtures in tests/data/rules/ (its README
has the conventions): `<ID>.fails.dts`, whose findings of that rule point at exactly
the lines marked `/* expect */`, and `<ID>.passes.dts`, where the rule stays silent.
The same files are the `rules` suite of `evtchn-spec vectors`."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_boot_model import System, cells

from evtchn_spec.cli import main as cli_main
from evtchn_spec.grammar import load
from evtchn_spec.grammar.dtb import read_dtb, write_dtb
from evtchn_spec.grammar.dts import parse_dts
from evtchn_spec.grammar.errors import InputError
from evtchn_spec.grammar.tree import Property, Tree
from evtchn_spec.oracle.vectors import RuleFixture, VectorsError, fixture_options, rule_fixtures
from evtchn_spec.refimpl import rules as R
from evtchn_spec.refimpl.check import CheckResult, check
from evtchn_spec.refimpl.config import Config, xen_profile
from evtchn_spec.refimpl.policy import Policy

ROOT = Path(__file__).resolve().parent.parent
RULES_DIR = ROOT / "tests" / "data" / "rules"
# Rules no file can reach, each with its stand-in <ID>.unreachable.dts (README.md).
UNREACHABLE = {R.XEN_DUP_PHANDLE}
FIXTURES: dict[tuple[str, bool], RuleFixture] = {
    (fx.rule, fx.breaks): fx for fx in rule_fixtures(RULES_DIR)}
ALL_IDS = sorted(r.id for r in R.all_rules())
FAILING = sorted(rule for rule, breaks in FIXTURES if breaks)
PASSING = sorted(rule for rule, breaks in FIXTURES if not breaks)
EXPECT = "/* expect */"
_ALSO = re.compile(r"^/\* also: (.*) \*/$", re.M)


def _run(fx: RuleFixture, strict: bool = False) -> tuple[CheckResult, Tree]:
    tree = load(fx.path)
    policy = Policy.load(fx.path.with_suffix(".toml")) if fx.policy is not None else None
    cfg = Config.from_tree(tree, xen_profile(fx.xen), fx.dialect)
    return check(cfg, policy=policy, strict=strict), tree


def _also(fx: RuleFixture) -> set[str]:
    """The other rules the fixture says its tree cannot help triggering."""
    found = _ALSO.findall(fx.text)
    return {r.strip() for line in found for r in line.split(",")}


def _marked(fx: RuleFixture, tree: Tree) -> set[tuple[str, int]]:
    """(node path, line) for each `/* expect */` line: the node that line opens, or
    whose property it sets."""
    owner: dict[int, str] = {}
    for node in tree.walk():
        owner[node.span.line] = node.path
        for p in node.properties.values():
            owner[p.span.line] = node.path
    out = set()
    for i, line in enumerate(fx.text.splitlines(), 1):
        if EXPECT in line:
            assert i in owner, f"{fx.path.name}:{i}: the marked line opens no node, sets nothing"
            out.add((owner[i], i))
    return out


def test_every_rule_has_both_fixtures_and_its_spec_entry_links_them() -> None:
    assert set(PASSING) == set(ALL_IDS)
    assert set(FAILING) == set(ALL_IDS) - UNREACHABLE
    for rule in UNREACHABLE:
        assert (RULES_DIR / f"{rule}.unreachable.dts").is_file()
    named = {p.name.split(".")[0] for p in RULES_DIR.iterdir() if p.suffix in (".dts", ".toml")}
    assert named <= set(ALL_IDS), sorted(named - set(ALL_IDS))
    spec = (ROOT / "spec" / "binding.md").read_text()
    sections = re.split(r"^(?=#+ )", spec, flags=re.M)
    for rule in ALL_IDS:
        (section,) = [s for s in sections if re.match(rf"#+ `{rule}`", s)]
        fails = "unreachable" if rule in UNREACHABLE else "fails"
        for kind in (fails, "passes"):
            assert f"(../tests/data/rules/{rule}.{kind}.dts)" in section, (rule, kind)


@pytest.mark.parametrize("rule_id", FAILING)
def test_failing_fixture_fires_its_rule_at_the_marked_lines(rule_id: str) -> None:
    fx = FIXTURES[rule_id, True]
    res, tree = _run(fx)
    hits = [f for f in res.findings if f.rule == rule_id]
    assert hits, [f.rule for f in res.findings]
    assert {f.rule for f in res.findings} == {rule_id} | _also(fx)
    for f in hits:
        assert f.severity == R.rule(rule_id).severity
        assert f.hint
        assert all(lc.file == str(fx.path) for lc in f.locations)
    expected = _marked(fx, tree)
    assert expected, f"{fx.path.name} marks no line {EXPECT}"
    assert {(lc.node, lc.line) for f in hits for lc in f.locations} == expected
    errors = any(f.severity == "error" for f in res.findings)
    assert res.verdict() == ("violations" if errors else "ok")


@pytest.mark.parametrize("rule_id", PASSING)
def test_passing_fixture_does_not_fire_its_rule(rule_id: str) -> None:
    fx = FIXTURES[rule_id, False]
    res, _tree = _run(fx)
    assert {f.rule for f in res.findings} == _also(fx), [
        (f.rule, f.message) for f in res.findings]
    assert rule_id not in _also(fx)
    assert EXPECT not in fx.text


@pytest.mark.parametrize("key", sorted(FIXTURES), ids=lambda k: f"{k[0]}.{k[1]}")
def test_fixture_reproduces_on_the_command_line(key: tuple[str, bool]) -> None:
    """`evtchn-spec check FILE [--xen V] [--dialect D] [--policy SIDECAR]`, as the
    README says, reports the same rules as the checks above."""
    fx = FIXTURES[key]
    argv = ["check", str(fx.path), "--format", "json", "--xen", fx.xen, "--dialect", fx.dialect]
    if fx.policy is not None:
        argv += ["--policy", str(fx.path.with_suffix(".toml"))]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = cli_main(argv)
    doc = json.loads(out.getvalue())
    res, _tree = _run(fx)
    assert sorted(f["rule"] for f in doc["findings"]) == sorted(f.rule for f in res.findings)
    assert rc == (1 if res.verdict() == "violations" else 0)


@pytest.mark.parametrize("key", sorted(FIXTURES), ids=lambda k: f"{k[0]}.{k[1]}")
def test_markers_are_only_comments(key: tuple[str, bool]) -> None:
    """Dropping every comment leaves the same tree (same DTB bytes)."""
    fx = FIXTURES[key]
    bare = re.sub(r"/\*.*?\*/", "", fx.text, flags=re.S)
    assert "/*" not in bare
    assert write_dtb(parse_dts(bare.encode(), "bare.dts")) == write_dtb(load(fx.path))


def test_dup_phandle_cannot_come_from_a_file_but_fires_in_memory() -> None:
    """XEN-DUP-PHANDLE: its tree, as DTS, is refused (as dtc refuses it); the same tree
    made in memory from the passing fixture is refused as a DTB too, and `check`
    reports the rule on it, naming both nodes."""
    stand_in = RULES_DIR / f"{R.XEN_DUP_PHANDLE}.unreachable.dts"
    with pytest.raises(InputError, match="duplicated phandle 0x10") as info:
        load(stand_in)
    line = stand_in.read_text().splitlines()[info.value.span.line - 1]
    assert line.strip() == "shadow {", line  # the second node with that phandle
    tree = load(FIXTURES[R.XEN_DUP_PHANDLE, False].path)
    shadow = tree.find("/chosen/domU2/shadow")
    assert shadow is not None
    old = shadow.properties["phandle"]
    shadow.properties["phandle"] = Property("phandle", cells(0x10), old.span)
    with pytest.raises(InputError, match="duplicated phandle"):
        read_dtb(write_dtb(tree), "dup.dtb")
    res = check(Config.from_tree(tree, xen_profile("4.17"), "auto"))
    (hit,) = [f for f in res.findings if f.rule == R.XEN_DUP_PHANDLE]
    assert hit.severity == R.rule(R.XEN_DUP_PHANDLE).severity
    assert {lc.node for lc in hit.locations} == {"/chosen/domU1/evtchn@1", "/chosen/domU2/shadow"}


@given(xen=st.sampled_from(["4.17", "4.19", "4.21", "master"]),
       dialect=st.sampled_from(["auto", "seed", "xen"]), swap=st.booleans(),
       before=st.text("ab /*\n", max_size=20))
def test_options_line_reads_both_options_in_either_order(xen: str, dialect: str, swap: bool,
                                                         before: str) -> None:
    pairs = [f"--xen {xen}", f"--dialect {dialect}"]
    text = f"/dts-v1/;\n{before}\n/* evtchn-spec: {' '.join(pairs[::-1] if swap else pairs)} */\n"
    assert fixture_options(text, "f.dts") == (xen, dialect)


@pytest.mark.parametrize(("line", "why"), [
    ("--policy p.toml", "knows only --xen and --dialect"),
    ("--xen", "must be pairs"),
    ("--xen 3.4", "unknown Xen version"),
    ("--dialect linux", "unknown dialect"),
])
def test_options_line_refuses_what_it_does_not_know(line: str, why: str) -> None:
    with pytest.raises(VectorsError, match=why) as info:
        fixture_options(f"/* evtchn-spec: {line} */\n", "f.dts")
    assert str(info.value).startswith("f.dts: ")


def test_all_findings_are_reported_not_just_the_first() -> None:
    s = System(dom0=False)
    a, b = s.domu("a"), s.domu("b")
    s.pair(a, 1024, b, 6)
    s.pair(a, 5, b, 2000)
    x, _ = s.pair(a, 7, b, 8)
    s.set_link(x, 7, 0x4242)
    res = check(s.config())
    rules = [f.rule for f in res.findings if f.severity == "error"]
    assert rules.count(R.EVT_PORT_RANGE) == 2 and R.XEN_PEER_UNKNOWN in rules


def test_strict_turns_warnings_into_errors() -> None:
    fx = FIXTURES[R.EVT_LOOPBACK, True]
    assert _run(fx)[0].verdict() == "ok"
    res, _tree = _run(fx, strict=True)
    assert res.verdict() == "violations" and {f.severity for f in res.findings} == {"error"}
