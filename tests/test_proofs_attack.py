"""`prove FILE --steps K --policy POLICY`: every attack it prints really does what
it claims when replayed with `run` (the CLI, as a user would), and a config with
only allowed channels under SILO is safe for any number of steps."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_runtime_machine import systems

from evtchn_spec.proofs import attack as A
from evtchn_spec.refimpl.policy import Policy

RING = "tests/data/boot/three-domains-ok.dts"  # d1:10 <-> d2:11, d2:12 <-> d3:13


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "evtchn_spec.cli", *args],
                          capture_output=True, text=True, check=False)


def policy(tmp: Path, pairs: list[tuple[str, str]]) -> str:
    p = tmp / "policy.toml"
    p.write_text("".join(f'[[allow]]\na = "{a}"\nb = "{b}"\n' for a, b in pairs))
    return str(p)


def replay_claim(tmp: Path, file: str, doc: dict[str, Any], xsm: str) -> None:
    """Run the printed trace with `run` and check the claim on its last call."""
    entry = next(e for e in doc["attacks"] if e["xsm"] == xsm)
    trace = tmp / "attack.json"
    trace.write_text(json.dumps(entry["attack"]["trace"]))
    r = cli("run", file, str(trace), "--format", "json", "--xsm", xsm)
    assert r.returncode == 0, r.stderr
    run = json.loads(r.stdout)
    last = run["calls"][-1]
    forbidden = {tuple(p) for p in entry["forbidden"]}
    assert last["op"] == "send" and last["rc"] == 0
    assert any(c.get("field") == "pending" and c["from"] is False and c["to"] is True
               and (last["caller"], c["dom"]) in forbidden for c in last["changes"])


def test_forbidden_static_channel_is_an_attack(tmp_path: Path) -> None:
    pol = policy(tmp_path, [("domU1", "domU2")])
    r = cli("prove", RING, "--steps", "3", "--policy", pol, "--format", "json")
    assert r.returncode == 1, r.stderr
    doc = json.loads(r.stdout)
    replay_claim(tmp_path, RING, doc, "silo")


def test_allowed_channels_are_safe_under_silo_for_any_length(tmp_path: Path) -> None:
    pol = policy(tmp_path, [("domU1", "domU2"), ("domU2", "domU3")])
    r = cli("prove", RING, "--steps", "4", "--policy", pol)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "no attack within 4 steps (silo), and for any number of steps" in r.stdout


def test_dummy_policy_lets_cooperating_domains_connect(tmp_path: Path) -> None:
    """Under the dummy XSM policy domU3 may offer domU1 a channel: an attack in
    three calls (alloc_unbound, bind_interdomain, send), replayed with run."""
    pol = policy(tmp_path, [("domU1", "domU2"), ("domU2", "domU3")])
    r = cli("prove", RING, "--steps", "3", "--policy", pol, "--xsm", "dummy",
            "--format", "json")
    assert r.returncode == 1, r.stderr
    doc = json.loads(r.stdout)
    assert len(doc["attacks"][0]["attack"]["trace"]["calls"]) == 3
    replay_claim(tmp_path, RING, doc, "dummy")


@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(res=systems(), xsm=st.sampled_from(["silo", "dummy"]), allow_all=st.booleans())
def test_search_results_are_replayable(res: Any, xsm: str, allow_all: bool) -> None:
    """On random systems: an attack found is confirmed by the refimpl; a "none"
    under an allow-everything policy is the only possible answer."""
    names = sorted({k for d in res.domains for k in A._keys(d.domid, d.name)})
    pairs = frozenset(frozenset((a, b)) for a in names for b in names) if allow_all \
        else frozenset()
    pol = Policy(False, pairs, "<test>")
    cfg = res.config
    from evtchn_spec.refimpl.boot import boot

    r = A.search(lambda: boot(cfg), pol, 2, xsm, timeout_ms=20000)
    if allow_all:
        assert r.status == "none" and not r.forbidden
    if r.status == "attack":
        assert r.attack is not None and r.attack.confirmed
