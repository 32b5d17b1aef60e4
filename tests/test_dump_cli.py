"""`evtchn-spec dump`: formats, -o, -@, and exit 2 with file:line:col on bad input."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_dtb_writer import SAMPLE_DTS, dtc

from evtchn_spec.cli import main
from evtchn_spec.grammar.dtb import read_dtb
from evtchn_spec.grammar.dump import to_json

LABELLED = b"""/dts-v1/;
/ {
    intc: ic@0 { reg = <0>; #interrupt-cells = <1>; };
    dev { interrupt-parent = <&intc>; interrupts = <5>; };
};
"""


@pytest.fixture
def sample_dtb(tmp_path: Path) -> Path:
    path = tmp_path / "sample.dtb"
    path.write_bytes(dtc(["-I", "dts", "-O", "dtb"], SAMPLE_DTS).stdout)
    return path


def test_dtb_format_is_dtcs(sample_dtb: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    assert main(["dump", str(sample_dtb), "--format", "dtb"]) == 0
    out = capsysbinary.readouterr().out
    assert out == dtc(["-I", "dtb", "-O", "dtb"], sample_dtb.read_bytes()).stdout


def test_json_is_the_default(sample_dtb: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dump", str(sample_dtb)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc == to_json(read_dtb(sample_dtb.read_bytes(), "s.dtb"))


def test_dts_to_a_file_recompiles(sample_dtb: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.dts"
    assert main(["dump", str(sample_dtb), "--format", "dts", "-o", str(out)]) == 0
    again = dtc(["-I", "dts", "-O", "dtb"], out.read_bytes())
    assert again.returncode == 0 and again.stdout == sample_dtb.read_bytes()


def test_symbols_option_matches_dtc_at(tmp_path: Path,
                                       capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    src = tmp_path / "l.dts"
    src.write_bytes(LABELLED)
    assert main(["dump", "-@", str(src), "--format", "dtb"]) == 0
    assert capsysbinary.readouterr().out == dtc(["-I", "dts", "-O", "dtb", "-@"], LABELLED).stdout
    assert main(["dump", str(src), "--format", "dtb"]) == 0
    assert capsysbinary.readouterr().out == dtc(["-I", "dts", "-O", "dtb"], LABELLED).stdout


def test_symbols_option_on_a_dtb_is_a_no_op_as_in_dtc(
        sample_dtb: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    assert main(["dump", "-@", str(sample_dtb), "--format", "dtb"]) == 0
    out = capsysbinary.readouterr().out
    assert out == dtc(["-@", "-I", "dtb", "-O", "dtb"], sample_dtb.read_bytes()).stdout


def test_refuses_to_overwrite_the_input(sample_dtb: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    before = sample_dtb.read_bytes()
    assert main(["dump", str(sample_dtb), "--format", "dtb", "-o", str(sample_dtb)]) == 2
    assert capsys.readouterr().err == f"{sample_dtb}: refusing to write over the input file\n"
    assert sample_dtb.read_bytes() == before
    assert sorted(p.name for p in sample_dtb.parent.iterdir()) == ["sample.dtb"]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "evtchn_spec.cli", *args],
                          capture_output=True, text=True, check=False)


@pytest.mark.parametrize("damage", ["magic", "truncate", "token"])
def test_bad_dtb_exits_2_with_a_position(sample_dtb: Path, damage: str) -> None:
    blob = bytearray(sample_dtb.read_bytes())
    if damage == "magic":
        blob[3] ^= 1
    elif damage == "truncate":
        del blob[-10:]
    else:
        at = int.from_bytes(blob[8:12], "big") + 8  # the root's first token
        blob[at:at + 4] = b"\0\0\0\x07"
    sample_dtb.write_bytes(bytes(blob))
    for fmt in ("json", "dts", "dtb"):
        res = _cli("dump", str(sample_dtb), "--format", fmt)
        assert res.returncode == 2 and res.stdout == ""
        lines = res.stderr.splitlines()
        assert len(lines) == 1 and "Traceback" not in res.stderr
        assert re.match(re.escape(str(sample_dtb)) + r":1:\d+: \S", lines[0]), lines[0]


def test_bad_dts_exits_2_with_a_position(tmp_path: Path) -> None:
    src = tmp_path / "bad.dts"
    src.write_text("/dts-v1/;\n/ {\n    prop = <1 2;\n};\n")
    res = _cli("dump", str(src))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert re.match(re.escape(str(src)) + r":3:\d+: ", res.stderr), res.stderr


def test_missing_file_exits_2(tmp_path: Path) -> None:
    res = _cli("dump", str(tmp_path / "nope.dtb"))
    assert res.returncode == 2 and "nope.dtb" in res.stderr and "Traceback" not in res.stderr


def test_dump_loads_no_solver_and_no_conformance_runner(sample_dtb: Path) -> None:
    """Start-up cost: `dump` must not import z3 (~70 ms) or the QEMU runner; only
    prove/fix/xen pay for them, when they run."""
    code = ("import sys\n"
            "from evtchn_spec.cli import main\n"
            f"rc = main(['dump', {str(sample_dtb)!r}, '--format', 'json'])\n"
            "heavy = sorted(m for m in sys.modules if m == 'z3' or m.startswith("
            "('evtchn_spec.proofs.certify', 'evtchn_spec.conformance.qemu', "
            "'evtchn_spec.oracle.vectors')))\n"
            "print(rc, heavy)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip().splitlines()[-1] == "0 []"
