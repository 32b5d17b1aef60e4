"""`boot --format json` against the real Xen 4.17 runs recorded by the conformance
harness (tests/data/xen/CASE.dts -> CASE.json, Debian 4.17.7 under QEMU): outcome,
error line, panic text, and every port of every domain."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from evtchn_spec.boot import boot
from evtchn_spec.check import check
from evtchn_spec.config import Config
from evtchn_spec.grammar import load

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
