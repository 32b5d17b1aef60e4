"""`graph`: every format names both ends of every channel the boot made."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from evtchn_spec.cli import main

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "dom0less-three-domus.dts"
SVG = "{http://www.w3.org/2000/svg}"
EXPECTED = {"d1:10 <-> d2:10", "d1:12 <-> d3:6", "d2:11 <-> d3:5"}


def _graph(capsys: pytest.CaptureFixture[str], fmt: str, path: Path = EXAMPLE) -> tuple[int, str]:
    rc = main(["graph", "--format", fmt, str(path)])
    return rc, capsys.readouterr().out


@pytest.mark.parametrize("fmt", ["dot", "mermaid"])
def test_text_formats_label_each_channel_with_both_ends(
        capsys: pytest.CaptureFixture[str], fmt: str) -> None:
    rc, out = _graph(capsys, fmt)
    assert rc == 0
    for label in EXPECTED:
        assert f'"{label}"' in out


def test_svg_is_well_formed_with_a_box_per_domain_and_a_line_per_channel(
        capsys: pytest.CaptureFixture[str]) -> None:
    rc, out = _graph(capsys, "svg")
    assert rc == 0
    root = ET.fromstring(out)
    texts = [t.text or "" for t in root.iter(f"{SVG}text")]
    assert len(root.findall(f"{SVG}rect")) == 3
    assert len(root.findall(f"{SVG}line")) == 3
    assert {"domU1 (d1)", "domU2 (d2)", "domU3 (d3)"} <= set(texts)
    assert sorted(t for t in texts if t.isdigit()) == sorted(["10", "10", "12", "6", "11", "5"])


def test_svg_draws_a_loopback_as_a_loop(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    src = EXAMPLE.read_text()
    # Re-point domU1's evtchn@c at a new node in domU1 itself (a loopback); domU3's
    # evtchn@6 is left pointing at itself.
    src = src.replace("xen,evtchn = <12 &log_from_sensor>;", "xen,evtchn = <12 &loop_b>;")
    src = src.replace("""			sensor_to_log: evtchn@c {
				compatible = "xen,evtchn-v1";
				xen,evtchn = <12 &loop_b>;
			};""", """			sensor_to_log: evtchn@c {
				compatible = "xen,evtchn-v1";
				xen,evtchn = <12 &loop_b>;
			};

			loop_b: evtchn@d {
				compatible = "xen,evtchn-v1";
				xen,evtchn = <13 &sensor_to_log>;
			};""")
    src = src.replace("xen,evtchn = <6 &sensor_to_log>;", "xen,evtchn = <6 &log_from_sensor>;")
    path = tmp_path / "loop.dts"
    path.write_text(src)
    rc, out = _graph(capsys, "svg", path)
    root = ET.fromstring(out)
    assert len(root.findall(f"{SVG}path")) == 1  # the loopback
    assert any((t.text or "") == "12 <-> 13" for t in root.iter(f"{SVG}text"))
    assert rc == 1  # domU3's evtchn@6 now points at itself: Xen panics after the loop
