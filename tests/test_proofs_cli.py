"""`prove` and `fix` on files: exit codes, JSON format 1, certificates re-checked by
cvc5, unsat cores, universal claims replayed in the reference boot, and repairs that
change only port cells."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from evtchn_spec.cli import main
from evtchn_spec.grammar import load
from evtchn_spec.proofs import certify
from evtchn_spec.refimpl import rules as R
from evtchn_spec.refimpl.boot import boot
from evtchn_spec.refimpl.config import Config, xen_profile

XEN = Path("tests/data/xen")
ORDERED = Path("tests/data/proofs/order-dependent.dts")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_prove_valid_file_proves_every_obligation(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "prove", str(XEN / "pair-basic.dts"), "--format", "json")
    doc = json.loads(out)
    assert rc == 0 and doc["format"] == 1 and doc["verdict"] == "proved"
    for ob in doc["obligations"]:
        assert R.rule(ob["rule"]).id == ob["rule"]  # named by a spec/binding.md rule ID
        assert ob["status"] == "proved" and ob["counterexamples"] == []
    assert doc["universal"]["status"] == "proved"


def test_prove_counterexample_names_the_port_cells(capsys: pytest.CaptureFixture[str]) -> None:
    path = XEN / "port-reused.dts"
    rc, out, _ = run(capsys, "prove", str(path), "--format", "json", "--orders", "off")
    doc = json.loads(out)
    assert rc == 1 and doc["verdict"] == "counterexample"
    (busy,) = [o for o in doc["obligations"] if o["rule"] == R.EVT_PORT_BUSY]
    (cx,) = busy["counterexamples"]
    lines = path.read_text().split("\n")
    cells = [lc for lc in cx["locations"] if lc["what"] == "port cell"]
    assert len(cells) == 2
    for lc in cells:  # each location is the literal 10 in the source
        assert lines[lc["line"] - 1][lc["column"] - 1:].startswith("10")
    # the core is minimal: the two cells and what makes them count (domains' facts)
    core_lines = {c["line"] for c in cx["core"]}
    assert {lc["line"] for lc in cells} <= core_lines
    # replay: the reference boot fails on exactly this port
    res = boot(Config.from_tree(load(str(path)), xen_profile("4.17")))
    assert res.failure is not None and res.failure.rule == R.EVT_PORT_BUSY
    assert f"port {cx['values']['port']} " in res.failure.message


def test_bad_input_is_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.dts"
    bad.write_text("/dts-v1/;\n/ { chosen { ")
    rc, _, err = run(capsys, "prove", str(bad))
    assert rc == 2 and err.count("\n") == 1 and str(bad) in err


def test_unknown_is_never_proved(capsys: pytest.CaptureFixture[str],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    real = certify.eval_script
    monkeypatch.setattr(certify, "eval_script",
                        lambda s: ["unknown" if a == "unsat" else a for a in real(s)])
    rc, out, _ = run(capsys, "prove", str(XEN / "pair-basic.dts"), "--format", "json",
                     "--orders", "off")
    doc = json.loads(out)
    assert rc == 3 and doc["verdict"] == "unknown"
    assert all(o["status"] != "proved" for o in doc["obligations"] if o["queries"])


def _cvc5_answers(path: Path) -> list[str]:
    cvc5 = pytest.importorskip("cvc5")
    tm = cvc5.TermManager()
    solver = cvc5.Solver(tm)
    solver.setOption("incremental", "true")
    sm = cvc5.SymbolManager(tm)
    parser = cvc5.InputParser(solver, sm)
    parser.setFileInput(cvc5.InputLanguage.SMT_LIB_2_6, str(path))
    out = []
    while True:
        cmd = parser.nextCommand()
        if cmd.isNull():
            break
        text = cmd.invoke(solver, sm).strip()
        if text:
            out.append(text)
    return out


@pytest.mark.parametrize("case", ["pair-basic", "port-reused", "port-zero-second-after-others",
                                  "xenstore-port-1-collision", "phandle-dangling",
                                  "port-1024-first", "self-link", "three-domains-ring"])
def test_certificate_rechecked_by_cvc5(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                       case: str) -> None:
    cert = tmp_path / "c.smt2"
    rc, _, _ = run(capsys, "prove", str(XEN / f"{case}.dts"), "--certificate", str(cert),
                   "--orders", "off")
    expect = re.findall(r"^;! expect (\w+)$", cert.read_text(), re.M)
    assert expect and "unknown" not in expect
    assert _cvc5_answers(cert) == expect
    assert (rc == 0) == all(e == "unsat" for e in expect)


def test_explain_gives_the_facts_a_proof_needs(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "prove", str(XEN / "pair-basic.dts"), "--format", "json",
                     "--explain", "--orders", "off")
    assert rc == 0
    doc = json.loads(out)
    (rng,) = [o for o in doc["obligations"] if o["rule"] == R.EVT_PORT_RANGE]
    for c in rng["cores"]:  # a port is in range because of its cell and its domain's limit
        whats = {x["what"] for x in c["core"]}
        assert "port cell" in whats


def _reorder(path: Path, order: list[str]) -> Config:
    tree = load(str(path))
    chosen = tree.root.children["chosen"]
    kids = chosen.children
    chosen.children = {name: kids[name] for name in order}
    return Config.from_tree(tree, xen_profile("4.17"))


def test_universal_claims_find_the_orders_that_break(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "prove", str(ORDERED), "--format", "json")
    doc = json.loads(out)
    # the written order boots (every concrete obligation holds) ...
    assert all(o["status"] == "proved" for o in doc["obligations"])
    assert boot(Config.from_tree(load(str(ORDERED)), xen_profile("4.17"))).outcome == "booted"
    # ... but not every order does, and each counterexample order really fails
    u = doc["universal"]
    assert rc == 1 and u["status"] == "counterexample"
    rules = {f["rule"] for f in u["findings"]}
    assert {R.EVT_PORT_ZERO, R.EVT_PORT_BUSY} <= rules
    for f in u["findings"]:
        res = boot(_reorder(ORDERED, f["order"]))
        assert res.failure is not None and res.failure.rule == f["rule"], f
    (zero,) = [f for f in u["findings"] if f["rule"] == R.EVT_PORT_ZERO]
    assert zero["needs"] == ["domU3 comes before domU2"]


def test_universal_claims_with_peers_outside_chosen(capsys: pytest.CaptureFixture[str]) -> None:
    """A peer outside /chosen has no place in the order (it was an internal error):
    its channel is made when its visited end is reached, and the orders that break
    really break in the reference boot."""
    path = Path("tests/data/proofs/peer-outside-chosen.dts")
    rc, out, _ = run(capsys, "prove", str(path), "--format", "json")
    doc = json.loads(out)
    assert all(o["status"] == "proved" for o in doc["obligations"])
    assert boot(Config.from_tree(load(str(path)), xen_profile("4.17"))).outcome == "booted"
    u = doc["universal"]
    assert rc == 1 and u["status"] == "counterexample" and u["findings"]
    for f in u["findings"]:
        res = boot(_reorder(path, f["order"]))
        assert res.failure is not None and res.failure.rule == f["rule"], f
    rc, out, _ = run(capsys, "prove", str(XEN / "outside-chosen-dom0.dts"), "--format", "json")
    assert rc == 0 and json.loads(out)["universal"]["status"] == "proved"


def test_universal_claims_proved_when_order_free(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "prove", str(XEN / "three-domains-ring.dts"), "--format", "json",
                     "--orders", "on")
    assert rc == 0 and json.loads(out)["universal"]["status"] == "proved"


@pytest.mark.parametrize("case", ["port-reused", "port-zero-first", "xenstore-port-1-collision",
                                  "port-1024-first", "port-zero-second-after-others"])
def test_fix_changes_only_port_cells(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                     case: str) -> None:
    src = tmp_path / "in.dts"
    shutil.copy(XEN / f"{case}.dts", src)
    before = src.read_bytes()
    out = tmp_path / "fixed.dts"
    rc, _, err = run(capsys, "fix", str(src), "-o", str(out))
    assert rc == 0 and src.read_bytes() == before
    changes = re.findall(r":(\d+):(\d+): \S+: port (\d+) -> (\d+)", err)
    assert changes
    old_lines, new_lines = before.decode().split("\n"), out.read_text().split("\n")
    assert len(old_lines) == len(new_lines)
    changed = {int(ln) for ln, _, _, _ in changes}
    for i, (a, b) in enumerate(zip(old_lines, new_lines, strict=True), 1):
        if i not in changed:
            assert a == b
    for ln, col, old, new in changes:  # the cell, and nothing else on its line, changed
        a, b = old_lines[int(ln) - 1], new_lines[int(ln) - 1]
        c = int(col) - 1
        assert a[:c] == b[:c] and a[c:].startswith(old) and b[c:].startswith(new)
        assert a[c + len(old):] == b[c + len(new):]
    res = boot(Config.from_tree(load(str(out)), xen_profile("4.17")))
    assert res.outcome == "booted"
    rc, _, _ = run(capsys, "prove", str(out), "--orders", "off")
    assert rc == 0


def test_fix_refuses_to_overwrite_the_input(capsys: pytest.CaptureFixture[str],
                                            tmp_path: Path) -> None:
    src = tmp_path / "in.dts"
    shutil.copy(XEN / "port-reused.dts", src)
    before = src.read_bytes()
    rc, _, err = run(capsys, "fix", str(src), "-o", str(src))
    assert rc == 2 and "refusing" in err and src.read_bytes() == before


def test_fix_says_what_no_port_can_fix(capsys: pytest.CaptureFixture[str],
                                      tmp_path: Path) -> None:
    out = tmp_path / "o.dts"
    rc, _, err = run(capsys, "fix", str(XEN / "phandle-dangling.dts"), "-o", str(out))
    assert rc == 1 and R.XEN_PEER_UNKNOWN in err and not out.exists()


def _filling(ends: int) -> str:
    """d2 gets `ends` channel ends with explicit ports from two peers, then two asking
    for port 0: past 1,023 ends the second has no free port left (ENOSPC)."""
    def dom(name: str, addr: int, lines: list[str]) -> str:
        return (f"{name} {{ compatible = \"xen,domain\"; #address-cells = <2>; "
                f"#size-cells = <1>; cpus = <1>; memory = <0 0x40000>;\n"
                f"module@1 {{ compatible = \"multiboot,kernel\", \"multiboot,module\"; "
                f"reg = <0 {addr:#x} 0x100000>; }};\n" + "\n".join(lines) + "\n};\n")
    a, c, b = [], [], []
    for i in range(ends + 2):  # the port-0 requests come last: d1 is visited after d0
        side = a if i % 2 == 0 and i < ends else c
        side.append(f"p{i}: e{i} {{ compatible = \"xen,evtchn-v1\"; "
                    f"xen,evtchn = <{len(side) + 1} &q{i}>; }};")
        b.append(f"q{i}: f{i} {{ compatible = \"xen,evtchn-v1\"; "
                 f"xen,evtchn = <{i + 1 if i < ends else 0} &p{i}>; }};")
    return ("/dts-v1/;\n/ { chosen { #address-cells = <2>; #size-cells = <1>;\n"
            + dom("d0", 0x40000000, a) + dom("d1", 0x48000000, c)
            + dom("d2", 0x50000000, b) + "}; };\n")


@pytest.mark.parametrize("ends", [1000, 1022])
def test_a_domain_that_may_run_out_of_ports_is_unknown_never_proved(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, ends: int) -> None:
    """The port model does not say when a port-0 request finds its domain full; a
    domain where that can happen (more ends than ports) leaves EVT-PORT-RANGE unknown,
    whether or not check finds the ENOSPC (1,022 explicit ports and two port-0
    requests: the second finds none)."""
    dts = tmp_path / "filling.dts"
    dts.write_text(_filling(ends))
    rc, out, _ = run(capsys, "check", str(dts))
    assert (rc == 1) == (ends == 1022) and ("ENOSPC" in out) == (ends == 1022), out[-600:]
    rc, out, _ = run(capsys, "prove", str(dts), "--orders", "off", "--format", "json")
    doc = json.loads(out)
    (rng,) = [o for o in doc["obligations"] if o["rule"] == R.EVT_PORT_RANGE]
    if ends == 1022:
        assert rc == 3 and doc["verdict"] == "unknown" and rng["status"] == "unknown"
        assert "ENOSPC" in rng["unsupported"][rng["unknown"][0]]
    else:
        assert rc == 0 and rng["status"] == "proved" and "unsupported" not in rng
