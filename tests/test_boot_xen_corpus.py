"""`boot --format json` against the real Xen 4.17 runs recorded by the conformance
harness (tests/data/xen/CASE.dts -> CASE.json, Debian 4.17.7 under QEMU): outcome,
error line, panic text, and every port of every domain."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from evtchn_spec.grammar import load
from evtchn_spec.refimpl.boot import boot
from evtchn_spec.refimpl.check import check
from evtchn_spec.refimpl.config import Config

DATA = Path(__file__).resolve().parent / "data" / "xen"
CASES = sorted(p for p in DATA.glob("*.dts") if p.with_suffix(".json").exists())


def test_the_recorded_corpus_is_there() -> None:
    assert len(CASES) >= 50


@pytest.mark.parametrize("dts", CASES, ids=[p.stem for p in CASES])
def test_boot_matches_real_xen(dts: Path) -> None:
    want: dict[str, Any] = json.loads(dts.with_suffix(".json").read_text())
    cfg = Config.from_tree(load(dts))
    got = boot(cfg).to_json()
    for key in ("outcome", "error", "panic"):
        assert got.get(key) == want.get(key), key
    if want["outcome"] == "booted":
        assert got["domains"] == want["domains"]
    # and check agrees with the boot: an error exactly on a panic or a missing channel
    res = check(cfg)
    missing = [e for e in cfg.endpoints if id(e.node) not in res.boot.realised]
    assert (res.errors > 0) == (want["outcome"] == "panic" or bool(missing))


# -- every release: the reference `boot --xen V` / `run --xen V` against what V did ------

import contextlib  # noqa: E402
import io  # noqa: E402

from evtchn_spec.conformance import corpus  # noqa: E402
from evtchn_spec.oracle.compare import differences, run_differences  # noqa: E402

INDEX = corpus.load_index(DATA)
PAIRS = sorted((case, release) for case, entry in INDEX["cases"].items()
               for release in entry["base"] + entry["own"])
# Known disagreements between the reference and a real release: (case, release) ->
# why.  Each is a strict xfail, so a fix (or a changed recording) shows up.
KNOWN: dict[tuple[str, str], str] = {}


def _ref(case: str, release: str, *, trace: bool = False) -> dict[str, Any]:
    from evtchn_spec.cli import main as cli_main

    path = DATA / f"{case}.dts"
    sub = ["run", str(path), str(DATA / f"{case}.trace.json")] if trace else ["boot", str(path)]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        cli_main([*sub, "--format", "json", "--dialect", "xen", "--xen", release])
    doc: dict[str, Any] = json.loads(out.getvalue())
    return doc


def test_every_case_is_recorded_on_every_release() -> None:
    cases = {p.stem for p in DATA.glob("*.dts")}
    assert set(INDEX["cases"]) == cases
    for case, entry in INDEX["cases"].items():
        assert sorted(entry["base"] + entry["own"], key=corpus.RELEASES.index) == list(
            INDEX["releases"]), case
    assert {"4.17", "4.20"} <= set(INDEX["releases"])


@pytest.mark.parametrize("case,release", [
    pytest.param(c, r, marks=pytest.mark.xfail(strict=True, reason=KNOWN[(c, r)]))
    if (c, r) in KNOWN else (c, r) for c, r in PAIRS], ids=[f"{r}-{c}" for c, r in PAIRS])
def test_reference_matches_each_release(case: str, release: str) -> None:
    want = corpus.recording(DATA, case, release)
    assert want is not None
    assert differences(want, _ref(case, release)) == []
    want_run = corpus.recording(DATA, case, release, run=True)
    if want_run is not None:
        assert run_differences(want_run, _ref(case, release, trace=True)) == []
