"""Every report is one line, whatever characters the input smuggles into it."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evtchn_spec.cli import main
from evtchn_spec.grammar.errors import InputError, Span, one_line


@given(st.text())
def test_one_line_never_leaves_a_line_break(text: str) -> None:
    out = one_line(text)
    assert out.isprintable()
    assert "\n" not in out and "\r" not in out
    if text.isprintable():
        assert out == text


@given(st.text(), st.text())
def test_input_error_is_one_line(file: str, message: str) -> None:
    err = InputError(Span(file, 3, 4), message)
    assert len(str(err).splitlines()) <= 1


def test_line_marker_with_a_newline_in_its_file_name(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Found by the DTS fuzzer: a cpp line marker whose file name runs over lines.
    src = tmp_path / "marker.dts"
    src.write_text('/dts-v1/;\n# 5 "orig\n/ {\n#line 40 "other.dtsi"\n};\n')
    assert main(["dump", str(src)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.endswith("\n")
    assert "syntax error" in err and err.startswith("orig\\n/ {\\n#line 40 ")
