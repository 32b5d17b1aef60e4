"""The rule traceability table: every rule of refimpl/rules.py, the spec section that
defines it, the Xen function it mirrors, the code that detects it, how `prove` covers
it and its two cases. The table is built here from the registry and the code, and
spec/README.md carries it verbatim (regenerate it with
`.venv/bin/python tests/test_rules_traceability.py`)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from evtchn_spec.grammar import load
from evtchn_spec.oracle.vectors import rule_fixtures
from evtchn_spec.proofs import encode, orders, repair, report
from evtchn_spec.refimpl import rules as R
from evtchn_spec.refimpl.check import check
from evtchn_spec.refimpl.config import Config, xen_profile
from evtchn_spec.refimpl.policy import Policy

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "spec"
RULES_DIR = ROOT / "tests" / "data" / "rules"
DETECTORS = (ROOT / "refimpl" / "boot.py", ROOT / "refimpl" / "check.py")
HEADER = ("| ID | severity | title | spec | Xen function | detector (refimpl/) "
          "| `prove` | cases |")
IDS = {r.id for r in R.all_rules()}
CONSTANTS = {name: value for name, value in vars(R).items()
             if name.isupper() and isinstance(value, str) and value in IDS}


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading's text."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> dict[str, tuple[str, str]]:
    """Anchor -> (its heading's text, the enclosing `## ` section's heading), for the
    explicit `<a id="..."></a>` line right above a heading and for every heading's
    own slug."""
    out: dict[str, tuple[str, str]] = {}
    lines = path.read_text(encoding="utf-8").splitlines()
    section = ""
    for i, line in enumerate(lines):
        m = re.match(r"^(#+) (.*)$", line)
        if m is None:
            continue
        if len(m.group(1)) == 2:
            section = m.group(2)
        out[_slug(m.group(2))] = (m.group(2), section)
        above = re.fullmatch(r'<a id="([^"]+)"></a>', lines[i - 1]) if i else None
        if above is not None:
            out[above.group(1)] = (m.group(2), section)
    return out


def _detectors() -> dict[str, list[str]]:
    """Rule ID -> the functions of boot.py and check.py that name its constant."""
    found: dict[str, list[str]] = {}
    for path in DETECTORS:
        tree = ast.parse(path.read_text(encoding="utf-8"))

        def visit(node: ast.AST, scope: str, path: Path = path) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.ClassDef | ast.FunctionDef):
                    visit(child, f"{scope}.{child.name}" if scope else child.name)
                    continue
                if (isinstance(child, ast.Attribute) and isinstance(child.value, ast.Name)
                        and child.value.id == "R" and child.attr in CONSTANTS and scope):
                    where = f"{path.name}:{scope}"
                    got = found.setdefault(CONSTANTS[child.attr], [])
                    if where not in got:
                        got.append(where)
                visit(child, scope)

        visit(tree, "")
    return found


def _cases(rule_id: str) -> list[Path]:
    """The rule's two cases: the failing one (or, for a rule no file can reach, its
    stand-in) and the passing one."""
    unreachable = RULES_DIR / f"{rule_id}.unreachable.dts"
    fails = unreachable if unreachable.is_file() else RULES_DIR / f"{rule_id}.fails.dts"
    return [fails, RULES_DIR / f"{rule_id}.passes.dts"]


def _proof(rule_id: str) -> str:
    """How `prove` covers the rule, as the proofs' code says."""
    if rule_id in encode.CLAIMS:
        text = f"proved: {encode.CLAIMS[rule_id]}"
        if rule_id in orders.ORDER_RULES:
            text += "; and for every /chosen order and Xen release (ORDERS)"
        return text
    return R.rule(rule_id).prove


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def rows() -> list[str]:
    detectors = _detectors()
    out = [HEADER, "|---|---|---|---|---|---|---|---|"]
    for r in R.all_rules():
        file, _, anchor = r.anchor.partition("#")
        _heading, section = _anchors(SPEC / file)[anchor]
        number = section.split(".", 1)[0]
        spec = f"[{file} §{number}]({r.anchor})"
        xen = ", ".join(f"`{f}`" for f in r.xen) or "—"
        found = ", ".join(f"`{d}`" for d in detectors.get(r.id, [])) or "—"
        cases = ", ".join(f"[{p.name.split('.')[1]}](../{p.relative_to(ROOT)})"
                          for p in _cases(r.id))
        out.append("| " + " | ".join(_cell(c) for c in (
            f"`{r.id}`", r.severity, r.title, spec, xen, found, _proof(r.id), cases)) + " |")
    return out


def _readme_table() -> list[str]:
    text = (SPEC / "README.md").read_text(encoding="utf-8")
    after = text.split("\n## Rule IDs\n", 1)[1].splitlines()
    start = next(i for i, line in enumerate(after) if line.startswith("|"))
    end = next((i for i in range(start, len(after)) if not after[i].startswith("|")),
               len(after))
    return after[start:end]


def test_readme_table_is_the_generated_one() -> None:
    expected = rows()
    assert _readme_table() == expected, "spec/README.md's table is stale; it should be:\n" \
        + "\n".join(expected)


def test_every_spec_anchor_resolves_to_the_rules_heading() -> None:
    for r in R.all_rules():
        file, sep, anchor = r.anchor.partition("#")
        assert sep and (SPEC / file).is_file(), r.anchor
        anchors = _anchors(SPEC / file)
        assert anchor in anchors, f"{r.id}: no heading for {r.anchor}"
        heading, _section = anchors[anchor]
        assert heading.startswith(f"`{r.id}`"), (r.id, heading)


def test_every_case_file_exists() -> None:
    missing = [str(p.relative_to(ROOT)) for r in R.all_rules() for p in _cases(r.id)
               if not p.is_file()]
    assert not missing, missing


def test_every_rule_has_a_detector() -> None:
    detectors = _detectors()
    assert [r.id for r in R.all_rules() if not detectors.get(r.id)] == []


def test_prove_coverage_is_the_registrys() -> None:
    for r in R.all_rules():
        assert r.proved == (r.id in encode.CLAIMS), r.id
        if r.proved:
            assert encode.CLAIMS[r.id] == r.prove
        assert r.orders == (r.id in orders.ORDER_RULES), r.id
        assert (r.prove == R.ASSUMED) == (r.id in report.NOT_COVERED), r.id
    assert list(encode.CLAIMS) == encode.RULE_ORDER


def test_fix_says_what_to_decide_for_every_rule_no_port_change_repairs() -> None:
    needs = set(encode.CLAIMS) - repair.PORT_RULES
    assert {r.id for r in R.all_rules() if r.decide} == needs


def test_every_named_xen_function_is_in_the_spec_or_the_code() -> None:
    texts = [p.read_text(encoding="utf-8") for p in
             [*SPEC.glob("*.md"), *(ROOT / "refimpl").glob("*.py")]
             if p.name != "rules.py"]
    for r in R.all_rules():
        for fn in r.xen:
            assert any(re.search(rf"\b{fn}\b", t) for t in texts), (r.id, fn)


def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"\{\w+\}", template)
    return re.compile(".+?".join(re.escape(p) for p in parts), re.S)


def test_every_finding_hint_is_a_registry_fix_text() -> None:
    """`check`'s fix texts on every case come from the registry (a template, filled)."""
    for fx in rule_fixtures(RULES_DIR):
        policy = Policy.load(fx.path.with_suffix(".toml")) if fx.policy is not None else None
        cfg = Config.from_tree(load(fx.path), xen_profile(fx.xen), fx.dialect)
        for f in check(cfg, policy=policy).findings:
            fixes = [t for _case, t in R.rule(f.rule).fixes]
            assert any(_pattern(t).fullmatch(f.hint) for t in fixes), (fx.path.name, f.hint)


if __name__ == "__main__":
    print("\n".join(rows()))
