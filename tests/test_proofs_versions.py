"""Claims over Xen versions range over releases verified by booting them, and say so.

refimpl/config.py's BOOTED_BUILDS names the build of each release that was booted on
every recorded case; tests/data/xen/releases/index.json is the record of those runs.
"""

from __future__ import annotations

import json
from pathlib import Path

from evtchn_spec.grammar import load
from evtchn_spec.proofs import orders
from evtchn_spec.refimpl.config import (
    BOOTED_BUILDS,
    KNOWN_VERSIONS,
    Config,
    versions_as_verified,
    xen_profile,
)

INDEX = Path(__file__).resolve().parent / "data" / "xen" / "releases" / "index.json"


def test_the_booted_builds_are_the_recorded_ones() -> None:
    index = json.loads(INDEX.read_text())
    assert set(BOOTED_BUILDS) == set(index["releases"])
    for release, build in index["releases"].items():
        if release == "master":
            assert build["source"] == "build" and build["banner_version"].endswith("-unstable")
        else:
            assert BOOTED_BUILDS[release] in (build["banner_version"], build["package_version"]
                                              .split("+")[0])


def test_every_case_was_recorded_on_every_booted_release() -> None:
    index = json.loads(INDEX.read_text())
    for case, entry in index["cases"].items():
        assert sorted(entry["base"] + entry["own"]) == sorted(BOOTED_BUILDS), case


def test_a_release_never_booted_is_named_as_read_only() -> None:
    text = versions_as_verified(["4.17", "4.99"])
    assert text == "4.17 (booted: 4.17.7), 4.99 (read only, never booted)"


def test_the_orders_claim_names_each_release_and_how_it_was_verified() -> None:
    cfg = Config.from_tree(load("examples/dom0less-three-domus.dts"), xen_profile("4.17"),
                           "auto")
    claim = orders.universal_claims(cfg)["claim"]
    for version in KNOWN_VERSIONS:
        assert f"{version} (booted: {BOOTED_BUILDS[version]})" in claim
