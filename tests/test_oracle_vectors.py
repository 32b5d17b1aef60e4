"""`evtchn-spec vectors`: layout, hashes, determinism, the refusal to overwrite, and
that every built-in suite says what it claims (spec/oracle.md)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

from evtchn_spec.cli import main as cli_main
from evtchn_spec.grammar.dtb import read_dtb
from evtchn_spec.oracle.compare import differences, run_differences

DATA = Path(__file__).resolve().parent / "data"


def vectors(*argv: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = cli_main(["vectors", *argv])
    return rc, err.getvalue()


def index(d: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((d / "index.json").read_text())
    return doc


def tree_bytes(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_random_suite_layout_hashes_and_determinism(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    assert vectors(str(a), "--suite", "random", "--random", "12")[0] == 0
    assert vectors(str(b), "--suite", "random", "--random", "12")[0] == 0
    assert tree_bytes(a) == tree_bytes(b), "same checkout, same seed: same bytes"
    idx = index(a)
    assert idx["oracle"] == 1 and idx["suites"] == {"random": 12}
    for e in idx["cases"]:
        cdir = a / e["id"]
        names = sorted(p.name for p in cdir.iterdir())
        assert {"input.dtb", "input.dts", "boot.json", "check.json", "meta.json"} <= set(names)
        assert ("trace.json" in names) == ("run.json" in names) == e["trace"]
        assert sorted(e["files"]) == names
        for name, digest in e["files"].items():
            assert hashlib.sha256((cdir / name).read_bytes()).hexdigest() == digest
        meta = json.loads((cdir / "meta.json").read_text())
        assert meta["recorded"] is False and meta["origin"] == "reference implementation only"
        assert json.loads((cdir / "boot.json").read_text())["outcome"] == e["outcome"]
        read_dtb((cdir / "input.dtb").read_bytes(), "input.dtb")  # a valid blob
    c = tmp_path / "c"
    assert vectors(str(c), "--suite", "random", "--random", "12", "--seed", "7")[0] == 0
    assert tree_bytes(c) != tree_bytes(a), "the seed matters"


def test_refuses_a_non_empty_directory_that_is_not_vectors(tmp_path: Path) -> None:
    keep = tmp_path / "notes.txt"
    keep.write_text("mine")
    rc, err = vectors(str(tmp_path), "--suite", "random", "--random", "2")
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith(f"{tmp_path}: not empty and not a vectors directory")
    assert err.rstrip().endswith("refusing to overwrite it")
    rc, err = vectors(str(keep), "--suite", "random", "--random", "2")
    assert rc == 2 and err == f"{keep}: exists and is not a directory\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    assert keep.read_text() == "mine"


def test_rewrites_its_own_output_and_keeps_other_suites(tmp_path: Path) -> None:
    assert vectors(str(tmp_path), "--suite", "random", "--random", "3")[0] == 0
    assert vectors(str(tmp_path), "--from", str(DATA / "xen" / "pair-basic.dts"),
                   "--suite", "mine", "--dialect", "xen")[0] == 0
    assert index(tmp_path)["suites"] == {"mine": 1, "random": 3}
    assert vectors(str(tmp_path), "--suite", "random", "--random", "2")[0] == 0
    assert index(tmp_path)["suites"] == {"mine": 1, "random": 2}
    assert not (tmp_path / "random" / "r002").exists()


def test_from_user_files_takes_the_sibling_trace(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "t.dts").write_bytes((DATA / "xen" / "pair-basic.dts").read_bytes())
    (src / "t.trace.json").write_bytes((DATA / "xen" / "pair-basic.trace.json").read_bytes())
    out = tmp_path / "out"
    assert vectors(str(out), "--from", str(src), "--dialect", "xen")[0] == 0
    run = json.loads((out / "user" / "t" / "run.json").read_text())
    recorded = json.loads((DATA / "xen" / "pair-basic.run.json").read_text())
    assert run_differences(recorded, run) == []


def test_from_a_bad_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.dts"
    bad.write_text("/dts-v1/;\n/ { x = <1 ; };\n")
    rc, err = vectors(str(tmp_path / "out"), "--from", str(bad))
    assert rc == 2 and err.startswith(str(bad)) and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_recorded_suites_agree_with_the_recordings(tmp_path: Path) -> None:
    assert vectors(str(tmp_path), "--suite", "xen", "--suite", "runtime")[0] == 0
    idx = index(tmp_path)
    assert idx["suites"]["xen"] == len(list((DATA / "xen").glob("*.dts")))
    assert idx["suites"]["runtime"] == len(list((DATA / "runtime").glob("*.dts")))
    for e in idx["cases"]:
        cdir = tmp_path / e["id"]
        meta = json.loads((cdir / "meta.json").read_text())
        assert meta["recorded"] and meta["origin"].startswith("recorded on real Xen 4.17")
        assert meta["dialect"] == "xen"
        if (cdir / "recorded-boot.json").is_file():
            assert differences(json.loads((cdir / "recorded-boot.json").read_text()),
                               json.loads((cdir / "boot.json").read_text())) == []
        if e["trace"]:
            assert run_differences(json.loads((cdir / "recorded-run.json").read_text()),
                                   json.loads((cdir / "run.json").read_text())) == []


def test_rules_suite_is_the_rule_fixtures(tmp_path: Path) -> None:
    """One case per tests/data/rules fixture, holding that file, its options and its
    policy; its check.json reports the rule exactly when the file is a .fails.dts."""
    from evtchn_spec.oracle.vectors import rule_fixtures
    from evtchn_spec.refimpl import rules as R

    rc, err = vectors(str(tmp_path), "--suite", "rules")
    assert rc == 0 and len(err.strip().splitlines()) == 1, err  # the summary, no warning
    fixtures = {f"rules/{fx.rule.lower()}-{'fails' if fx.breaks else 'passes'}": fx
                for fx in rule_fixtures(DATA / "rules")}
    ids = {e["id"] for e in index(tmp_path)["cases"]}
    examples = {f"rules/example-{p.stem}" for p in (DATA / "boot").glob("*.dts")}
    assert ids == set(fixtures) | examples
    seen: dict[str, set[bool]] = {}
    for cid, fx in fixtures.items():
        cdir = tmp_path / cid
        meta = json.loads((cdir / "meta.json").read_text())
        assert (meta["rule"], meta["expect_rule"]) == (fx.rule, fx.breaks)
        assert (meta["xen"], meta["dialect"]) == (fx.xen, fx.dialect)
        assert meta["source"] == f"tests/data/rules/{fx.path.name}"
        assert (cdir / "input.dts").read_bytes() == fx.path.read_bytes()
        first = re.search(r"/\*(.*?)\*/", fx.text, re.S)
        assert first is not None
        assert meta["description"] == " ".join(first.group(1).replace("\n *", " ").split())
        assert ((cdir / "policy.toml").read_text() if fx.policy is not None else None) == \
            (fx.path.with_suffix(".toml").read_text() if fx.policy is not None else None)
        assert (cdir / "policy.toml").is_file() == (fx.policy is not None)
        found = json.loads((cdir / "check.json").read_text())["findings"]
        assert (fx.rule in {f["rule"] for f in found}) == fx.breaks, cid
        seen.setdefault(fx.rule, set()).add(fx.breaks)
    # every rule has both trees, except the one no file can hold (dtc refuses it too)
    assert {r for r, s in seen.items() if s == {True, False}} == \
        {r.id for r in R.all_rules()} - {R.XEN_DUP_PHANDLE}
    assert seen[R.XEN_DUP_PHANDLE] == {False}


@pytest.mark.parametrize("suite", ["nope"])
def test_unknown_suite(tmp_path: Path, suite: str) -> None:
    rc, err = vectors(str(tmp_path / "o"), "--suite", suite)
    assert rc == 2 and "unknown suite" in err


def test_full_generation(tmp_path: Path) -> None:
    rc, err = vectors(str(tmp_path))
    assert rc == 0, err
    idx = index(tmp_path)
    assert set(idx["suites"]) == {"xen", "runtime", "rules", "random"}
    assert idx["suites"]["random"] == 100
    assert len(idx["cases"]) == sum(idx["suites"].values())
    # the random suite meets the situations spec/oracle.md promises
    boots = [json.loads((tmp_path / e["id"] / "boot.json").read_text())
             for e in idx["cases"] if e["suite"] == "random"]
    errors = {b.get("error") for b in boots}
    assert "evtchn_alloc_unbound() failure (Error -16) " in errors
    assert "evtchn_bind_interdomain() failure (Error -16) " in errors
    assert any("(Error -28)" in (x or "") for x in errors)
    assert "xen,evtchn property is not setup correctly." in errors
    assert any(b["outcome"] == "booted" and "0" in b["domains"] for b in boots)
    assert any(b["outcome"] == "booted" and any(p["status"] == "unbound" for d in
               b["domains"].values() for p in d["ports"]) for b in boots)


def test_builtin_suites_read_the_data_package(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The suites read the package evtchn_spec.cases (tests/data, shipped in the wheel:
    tests/test_wheel_install.py), wherever the module itself lies. Without that
    package: one clear line, exit 2, nothing written; the random suite needs none."""
    from evtchn_spec.oracle import vectors as V

    monkeypatch.setattr(V, "__file__", str(tmp_path / "site" / "evtchn_spec" / "vectors.py"))
    assert vectors(str(tmp_path / "a"), "--suite", "runtime")[0] == 0
    recorded = [d for d in (DATA / "runtime").glob("*.dts")
                if d.with_suffix(".json").is_file()
                or (d.parent / f"{d.stem}.run.json").is_file()]
    assert recorded
    assert index(tmp_path / "a")["suites"] == {"runtime": len(recorded)}
    monkeypatch.setattr(V, "CASES_PACKAGE", "evtchn_spec.no_such_data")
    rc, err = vectors(str(tmp_path / "out"), "--suite", "xen")
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert "evtchn_spec.no_such_data" in err and "not installed" in err
    assert not (tmp_path / "out").exists()
    assert vectors(str(tmp_path / "out"), "--suite", "random", "--random", "1")[0] == 0
