"""What the recorded guests saw beyond their ports agrees with the release profiles.

Every case recorded on real Xen (tests/data/xen/*.json on 4.17, tests/data/xen/releases/
V/*.json on the later releases) that booted a dom0 says whether dom0's own device tree
held the host's `xen,evtchn-v1` nodes; `XenProfile.dom0_dt_has_evtchn_nodes` says which
releases copy them (spec/boot.md, "dom0's own device tree").
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evtchn_spec.refimpl.config import xen_profile

DATA = Path(__file__).resolve().parent / "data" / "xen"


def _dom0_cases() -> list[tuple[str, Path]]:
    found = [("4.17", p) for p in sorted(DATA.glob("*.json"))]
    for rel in sorted(d for d in (DATA / "releases").iterdir() if d.is_dir()):
        found += [(rel.name, p) for p in sorted(rel.glob("*.json"))]
    out = []
    for release, path in found:
        guest = (json.loads(path.read_text()).get("observed") or {}).get("guests", {}).get("0")
        if guest is not None and guest.get("tag") == "hwdom" \
                and "dt_evtchn_nodes" in guest and b"xen,evtchn-v1" in _tree_bytes(path):
            out.append((release, path))
    return out


def _tree_bytes(case: Path) -> bytes:
    dts = DATA / (case.stem + ".dts")
    return dts.read_bytes() if dts.exists() else b""


CASES = _dom0_cases()


def test_there_are_dom0_cases_on_every_release() -> None:
    assert {r for r, _ in CASES} == {"4.17", "4.18", "4.19", "4.20", "4.21", "4.22", "master"}


@pytest.mark.parametrize(("release", "path"), CASES,
                         ids=[f"{r}/{p.stem}" for r, p in CASES])
def test_dom0_sees_the_host_evtchn_nodes_as_its_release_says(release: str, path: Path) -> None:
    guest = json.loads(path.read_text())["observed"]["guests"]["0"]
    assert bool(guest["dt_evtchn_nodes"]) == xen_profile(release).dom0_dt_has_evtchn_nodes
