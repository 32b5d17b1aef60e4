"""`evtchn-spec table`: the binding table in text, json, csv, markdown, and the
per-domain guest DT fragments (`--guest-dt`)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
from pathlib import Path

import pytest
from test_boot_model import System

from evtchn_spec.cli import main
from evtchn_spec.refimpl.boot import boot
from evtchn_spec.render import table as tbl

DATA = Path(__file__).resolve().parent / "data" / "boot"
OK = DATA / "three-domains-ok.dts"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_json_rows_are_both_ends_of_every_channel(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "table", str(OK), "--format", "json")
    assert rc == 0
    rows = json.loads(out)["rows"]
    got = {(r["domain"], r["port"], r["peer_domain"], r["peer_port"]) for r in rows}
    assert got == {("domU1", 10, "domU2", 11), ("domU2", 11, "domU1", 10),
                   ("domU2", 12, "domU3", 13), ("domU3", 13, "domU2", 12)}
    assert {r["node"] for r in rows if r["domain"] == "domU1"} == {"/chosen/domU1/evtchn@a"}


def test_csv_markdown_text_agree(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "table", str(OK), "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 4 and rows[0]["domain"] == "domU1" and rows[0]["port"] == "10"
    _, md, _ = run(capsys, "table", str(OK), "--format", "markdown")
    lines = md.strip().splitlines()
    assert lines[0].startswith("| domain |") and len(lines) == 2 + 4
    _, text, _ = run(capsys, "table", str(OK))
    assert len(text.strip().splitlines()) == 2 + 4 and "domU3" in text


def test_table_shows_the_port_xen_really_gives() -> None:
    s = System(dom0=True)
    a = s.domu("a", enhanced="enabled")
    b = s.domu("b", enhanced="no-xenstore")
    s.pair(a, 5, b, 0)  # b's port 0: the lowest free port, 1
    res = boot(s.config())
    rows = tbl.rows(res)
    mine = {(r.domain, r.port, r.kind) for r in rows}
    assert ("b", 1, "static") in mine
    assert ("a", 1, "xenstore") in mine  # the xenstore port, remote dom0
    assert tbl.to_csv(rows).count("\n") == len(rows) + 1


def test_guest_dt_fragments_compile_with_dtc(capsys: pytest.CaptureFixture[str],
                                             tmp_path: Path) -> None:
    out = tmp_path / "guests"
    rc, _, _ = run(capsys, "table", str(OK), "--guest-dt", str(out))
    assert rc == 0
    files = sorted(p.name for p in out.iterdir())
    assert files == ["1-domU1.dts", "2-domU2.dts", "3-domU3.dts"]
    text = (out / "2-domU2.dts").read_text()
    assert "evtchn@b {" in text and "remote-port = <10>;" in text
    for f in out.iterdir():
        res = subprocess.run(["dtc", "-q", "-I", "dts", "-O", "dtb", "-o", "/dev/null", str(f)],
                             capture_output=True, text=True)
        assert res.returncode == 0, res.stderr


def test_table_of_a_panicking_tree_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = run(capsys, "table", str(DATA / "many-problems.dts"))
    assert rc == 1 and "panic" in err
