"""The DTS front end against the installed dtc 1.6.1, run live on small cases.

* every file in tests/data/dts/valid compiles to the very bytes `dtc -O dtb` writes,
  with and without `-@` (symbols);
* every file in tests/data/dts/invalid is rejected by dtc and by us with an InputError
  on the same line dtc reports (when dtc reports one);
* /include/, /incbin/, cpp and line markers, spans and pieces, and inputs built to
  break a recursive implementation.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from evtchn_spec.grammar.dtb import write_dtb
from evtchn_spec.grammar.dts import parse_dts
from evtchn_spec.grammar.errors import InputError
from evtchn_spec.grammar.tree import PieceKind, RefKind

DATA = Path(__file__).parent / "data" / "dts"
VALID = sorted((DATA / "valid").glob("*.dts"))
INVALID = sorted((DATA / "invalid").glob("*.dts"))
_DTC = shutil.which("dtc")
assert _DTC is not None, "dtc must be installed: run ./install.sh"
DTC: str = _DTC
CPP_FLAGS = ["-nostdinc", "-undef", "-x", "assembler-with-cpp", "-D__DTS__"]


def dtc(path: Path, *extra: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    src = "-" if stdin is not None else str(path)
    return subprocess.run([DTC, "-q", "-I", "dts", "-O", "dtb", *extra, "-o", "-", src],
                          input=stdin, capture_output=True, check=False, cwd=path.parent)


def ours(path: Path, symbols: bool = False) -> bytes:
    return write_dtb(parse_dts(path.read_bytes(), str(path), symbols=symbols))


def test_case_lists_are_not_empty() -> None:
    assert len(VALID) >= 15 and len(INVALID) >= 50


@pytest.mark.parametrize("symbols", [False, True], ids=["plain", "symbols"])
@pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
def test_valid_case_matches_dtc(path: Path, symbols: bool) -> None:
    ref = dtc(path, *(["-@"] if symbols else []))
    assert ref.returncode == 0, ref.stderr.decode()
    assert ours(path, symbols=symbols) == ref.stdout


_DTC_POS = re.compile(r":(\d+)\.(\d+)")


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
def test_invalid_case_rejected_like_dtc(path: Path) -> None:
    ref = dtc(path)
    assert ref.returncode != 0, "dtc accepts this case: it belongs in valid/"
    with pytest.raises(InputError) as exc:
        parse_dts(path.read_bytes(), str(path))
    err = exc.value
    assert err.span.file == str(path)
    assert err.span.line >= 1 and err.span.column >= 1
    assert "\n" not in str(err)
    m = _DTC_POS.search(ref.stderr.decode())
    if m is not None:
        assert err.span.line == int(m.group(1)), ref.stderr.decode()


# ---------------------------------------------------------------- includes


def test_include_relative_then_include_dirs(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "inc").mkdir()
    (tmp_path / "sub" / "a.dtsi").write_text('/include/ "b.dtsi"\n/ { a = <1>; };\n')
    (tmp_path / "sub" / "b.dtsi").write_text("/ { b = <2>; };\n")
    (tmp_path / "inc" / "c.dtsi").write_text("/ {\n\tc = <3>;\n};\n")
    main = tmp_path / "main.dts"
    main.write_text('/dts-v1/;\n/include/ "sub/a.dtsi"\n/include/ "c.dtsi"\n'
                    '/ { d = /include/ "v.dtsi" ; };\n')
    (tmp_path / "v.dtsi").write_text("<4>")
    ref = dtc(main, "-i", str(tmp_path / "inc"))
    assert ref.returncode == 0, ref.stderr
    tree = parse_dts(main.read_bytes(), str(main), include_dirs=[tmp_path / "inc"])
    assert write_dtb(tree) == ref.stdout
    c = tree.root.properties["c"]
    assert c.span.file == str(tmp_path / "inc" / "c.dtsi")
    assert (c.span.line, c.span.column) == (2, 2)
    assert c.pieces[0].span.file == str(tmp_path / "inc" / "c.dtsi")
    b = tree.root.properties["b"]
    assert b.span.file == str(tmp_path / "sub" / "b.dtsi") and b.span.line == 1
    d = tree.root.properties["d"]
    assert d.span.file == str(main) and d.pieces[0].span.file == str(tmp_path / "v.dtsi")


def test_include_cycle_and_missing_file_are_clean_errors(tmp_path: Path) -> None:
    (tmp_path / "x.dtsi").write_text('/include/ "y.dtsi"\n')
    (tmp_path / "y.dtsi").write_text('/include/ "x.dtsi"\n')
    main = tmp_path / "m.dts"
    main.write_text('/dts-v1/;\n/include/ "x.dtsi"\n/ { };\n')
    with pytest.raises(InputError, match="nested too deeply"):
        parse_dts(main.read_bytes(), str(main))
    main.write_text('/dts-v1/;\n/ { };\n\n/include/ "nope.dtsi"\n')
    with pytest.raises(InputError, match="Couldn't open") as exc:
        parse_dts(main.read_bytes(), str(main))
    assert (exc.value.span.line, exc.value.span.column) == (4, 1)


def test_incbin(tmp_path: Path) -> None:
    (tmp_path / "blob.bin").write_bytes(bytes(range(40)))
    main = tmp_path / "m.dts"
    main.write_text('/dts-v1/;\n/ { a = /incbin/("blob.bin"); b = "x", /incbin/("blob.bin", 4, 8);'
                    ' c = /incbin/("blob.bin", 38, 10); };\n')
    ref = dtc(main)
    assert ref.returncode == 0, ref.stderr
    tree = parse_dts(main.read_bytes(), str(main))
    assert write_dtb(tree) == ref.stdout
    assert tree.root.properties["b"].value == b"x\0" + bytes(range(4, 12))


# ---------------------------------------------------------------- cpp and line markers


def test_cpp_mode_matches_linux_pipeline(tmp_path: Path) -> None:
    (tmp_path / "inc").mkdir()
    (tmp_path / "inc" / "defs.h").write_text("#define PORT(x) ((x) + 10)\n#define NAME \"dom\"\n")
    (tmp_path / "board.dtsi").write_text("/ {\n\tlbl: node@1 { reg = <1>; };\n};\n")
    main = tmp_path / "main.dts"
    main.write_text('/dts-v1/;\n#include <defs.h>\n#include "board.dtsi"\n'
                    "/ {\n\tname-prop = NAME;\n\tport = <PORT(3)>;\n};\n&lbl { x = <&lbl>; };\n")
    pre = subprocess.run(["cpp", *CPP_FLAGS, "-I", str(tmp_path / "inc"), str(main)],
                         capture_output=True, check=True).stdout
    ref = dtc(main, stdin=pre)
    assert ref.returncode == 0, ref.stderr
    tree = parse_dts(main.read_bytes(), str(main), cpp=True, include_dirs=[tmp_path / "inc"])
    assert write_dtb(tree) == ref.stdout
    port = tree.root.properties["port"]
    assert port.span.file == str(main) and port.span.line == 6
    piece = port.pieces[0]
    assert (piece.span.line, piece.span.column) == (6, 10)
    node = tree.find("/node@1")
    assert node is not None
    assert node.span.file == str(tmp_path / "board.dtsi") and node.span.line == 2
    assert [s.line for s in node.other_spans] == [8]


def test_cpp_error_is_one_line_at_the_directive(tmp_path: Path) -> None:
    main = tmp_path / "main.dts"
    main.write_text('/dts-v1/;\n/ { };\n#include "missing.h"\n')
    with pytest.raises(InputError) as exc:
        parse_dts(main.read_bytes(), str(main), cpp=True)
    assert exc.value.span.file == str(main) and exc.value.span.line == 3
    assert "missing.h" in exc.value.message and "\n" not in str(exc.value)
    main.write_text("/dts-v1/;\n#if\n#endif\n/ { };\n")
    with pytest.raises(InputError) as exc:
        parse_dts(main.read_bytes(), str(main), cpp=True)
    assert exc.value.span.line == 2


def test_line_markers_move_spans_and_errors() -> None:
    src = (b'/dts-v1/;\n# 100 "board.dtsi" 1\n/ {\n\ta = <1>;\n};\n'
           b'# 7 "top.dts" 2\n/ { b = <2>; };\n')
    tree = parse_dts(src, "x.dts")
    a = tree.root.properties["a"]
    assert (a.span.file, a.span.line, a.span.column) == ("board.dtsi", 101, 2)
    b = tree.root.properties["b"]
    assert (b.span.file, b.span.line) == ("top.dts", 7)
    with pytest.raises(InputError) as exc:
        parse_dts(src.replace(b"b = <2>", b"b = <2"), "x.dts")
    assert (exc.value.span.file, exc.value.span.line) == ("top.dts", 7)


# ---------------------------------------------------------------- spans and pieces


def _text_at(src: str, span_line: int, col: int, end_line: int, end_col: int) -> str:
    lines = src.split("\n")
    if span_line == end_line:
        return lines[span_line - 1][col - 1 : end_col - 1]
    out = [lines[span_line - 1][col - 1 :]]
    out += lines[span_line : end_line - 1]
    out.append(lines[end_line - 1][: end_col - 1])
    return "\n".join(out)


def test_pieces_cover_each_written_element() -> None:
    src = ('/dts-v1/;\n/ {\n\tp = "s", <1 (2 + 3) &l \'c\'>, [00 11], &l,'
           " /bits/ 16 <0x10>;\n\tq = <0x20>;\n\tl: d { };\n};\n")
    tree = parse_dts(src.encode(), "p.dts")
    p = tree.root.properties["p"]
    got = [(pc.kind, pc.offset, pc.size, _text_at(src, pc.span.line, pc.span.column,
                                                   pc.span.end_line, pc.span.end_column))
           for pc in p.pieces]
    assert got == [
        (PieceKind.STRING, 0, 2, '"s"'),
        (PieceKind.CELL, 2, 4, "1"),
        (PieceKind.CELL, 6, 4, "(2 + 3)"),
        (PieceKind.REF, 10, 4, "&l"),
        (PieceKind.CELL, 14, 4, "'c'"),
        (PieceKind.BYTES, 18, 2, "[00 11]"),
        (PieceKind.PATH, 20, 3, "&l"),
        (PieceKind.CELL, 23, 2, "0x10"),
    ]
    assert p.value[20:23] == b"/d\0" and p.value[10:14] == (1).to_bytes(4, "big")
    assert [(r.offset, r.kind) for r in p.refs] == [(10, RefKind.PHANDLE), (20, RefKind.PATH)]
    assert _text_at(src, p.span.line, p.span.column, p.span.end_line,
                    p.span.end_column).startswith("p = ")
    for prop in tree.root.properties.values():
        for pc in prop.pieces:
            assert prop.piece_at(pc.offset) is pc or pc.size == 0


def test_merged_property_span_is_the_last_assignment() -> None:
    src = b"/dts-v1/;\n/ { a: n { p = <1>; }; };\n&a { p = <2>; };\n"
    tree = parse_dts(src, "m.dts")
    n = tree.find("/n")
    assert n is not None
    assert n.span.line == 2 and [s.line for s in n.other_spans] == [3]
    assert n.properties["p"].span.line == 3 and n.properties["p"].cells() == [2]
    assert n.labels == ["a"] and tree.labels["a"] is n


def test_memreserve_labels_and_spans() -> None:
    src = b"/dts-v1/;\nx: y: /memreserve/ 0x10 0x20;\n/memreserve/ (1 << 4) 'a';\n/ { };\n"
    tree = parse_dts(src, "r.dts")
    m = tree.memreserves
    assert [(r.address, r.size) for r in m] == [(0x10, 0x20), (16, 97)]
    assert set(m[0].labels) == {"x", "y"} and m[1].span.line == 3


# ---------------------------------------------------------------- robustness


def test_deep_nesting_is_not_a_recursion_problem() -> None:
    # dtc's parser stack (10,000 entries) takes 3,330 levels below the root and 9,989
    # open parentheses at most; both are read here, and one more is refused where it
    # starts (dtc: "memory exhausted"), not by a recursion limit
    n = 3_330
    src = "/dts-v1/;\n/ {" + "a {" * n + "};" * n + "};\n"
    tree = parse_dts(src.encode(), "deep.dts")
    assert len(write_dtb(tree)) > n * 8
    src = "/dts-v1/;\n/ {" + "a {" * (n + 1) + "};" * (n + 1) + "};\n"
    with pytest.raises(InputError, match="nested too deeply") as exc:
        parse_dts(src.encode(), "deep.dts")
    assert str(exc.value).startswith(f"deep.dts:2:{6 + 3 * n}: ")  # its `{`
    src = "/dts-v1/;\n/ {" + "a {" * 30_000 + "x = <1>;" + "};" * 30_000 + "};\n"
    with pytest.raises(InputError, match="nested too deeply"):
        parse_dts(src.encode(), "deep.dts")
    m = 9_989
    src = "/dts-v1/;\n/ { p = <" + "(" * m + "1" + ")" * m + ">; };\n"
    assert parse_dts(src.encode(), "paren.dts").root.properties["p"].cells() == [1]
    src = "/dts-v1/;\n/ { p = <" + "(" * (m + 1) + "1" + ")" * (m + 1) + ">; };\n"
    with pytest.raises(InputError, match="nested too deeply") as exc:
        parse_dts(src.encode(), "paren.dts")
    assert str(exc.value).startswith(f"paren.dts:2:{10 + m}: ")


def test_huge_and_odd_numbers() -> None:
    with pytest.raises(InputError, match="out of range"):
        parse_dts(b"/dts-v1/;\n/ { p = <" + b"9" * 5000 + b">; };\n", "big.dts")
    tree = parse_dts(b"/dts-v1/;\n/ { p = /bits/ 64 <0xffffffffffffffff 01777>; };\n", "n.dts")
    assert tree.root.properties["p"].value == b"\xff" * 8 + (0o1777).to_bytes(8, "big")


def test_phandles_follow_dtc_order_and_skip_explicit_values() -> None:
    src = (b"/dts-v1/;\n/ { r = <&c &a &b>; a: a { }; b: b { phandle = <2>; };"
           b" c: c { }; };\n")
    tree = parse_dts(src, "ph.dts")
    got = {n.path: n.phandle for n in tree.walk() if n.phandle}
    assert got == {"/c": 1, "/a": 3, "/b": 2}
    a = tree.find("/a")
    assert a is not None and list(a.properties) == ["phandle"]
    assert tree.phandles[3] is tree.find("/a")


def test_dtc_warnings_we_replicate_are_diagnostics_not_errors() -> None:
    src = b"/dts-v1/;\n/ { a = <1>; a { }; l: b { }; };\n&l { };\n"
    tree = parse_dts(src, "w.dts", symbols=True)
    assert [str(w) for w in tree.warnings] == [
        "w.dts:2:14: warning: /a: node name and property name conflict"]
    symbols = tree.find("/__symbols__")
    assert symbols is not None and symbols.properties["l"].value == b"/b\0"


def test_plain_cell_lists_keep_exact_positions(tmp_path: Path) -> None:
    src = ("/dts-v1/;\n/ {\n\tp = <1U2\n\t\t0x10ULL &l\n  &{/n}  >  ;\n"
           "\tq = < >, <07>;\n\tl: n { };\n};\n")
    path = tmp_path / "c.dts"
    path.write_text(src)
    ref = dtc(path)
    assert ref.returncode == 0, ref.stderr
    tree = parse_dts(src.encode(), str(path))
    assert write_dtb(tree) == ref.stdout
    p = tree.root.properties["p"]
    texts = [_text_at(src, pc.span.line, pc.span.column, pc.span.end_line, pc.span.end_column)
             for pc in p.pieces]
    assert texts == ["1U", "2", "0x10ULL", "&l", "&{/n}"]
    assert [(pc.span.line, pc.span.column) for pc in p.pieces] == [
        (3, 7), (3, 9), (4, 3), (4, 11), (5, 3)]
    assert (p.span.end_line, p.span.end_column) == (5, 14)
    for bad, msg, col in [("<1 0x100000000>", "out of range", 12),
                          ("<1 09>", "Bad integer", 12),
                          ("<99999999999999999999>", "out of range", 10)]:
        with pytest.raises(InputError, match=msg) as exc:
            parse_dts(f"/dts-v1/;\n/ {{ x = {bad}; }};\n".encode(), "e.dts")
        assert (exc.value.span.line, exc.value.span.column) == (2, col)


@pytest.mark.parametrize("path", [p for p in VALID if p.name != "linemarkers.dts"],
                         ids=lambda p: p.name)
def test_every_piece_span_covers_its_literal(path: Path) -> None:
    src = path.read_text(encoding="latin-1")
    tree = parse_dts(path.read_bytes(), str(path))
    first = {"string": '"', "ref": "&", "path": "&", "bytes": "["}
    last = {"string": '"', "bytes": "]"}
    for node in tree.walk():
        # made by dtc, not written: overlay wrappers, /__symbols__, /__*fixups__
        generated = node.name.startswith("fragment@") or node.path.startswith("/__")
        for prop in node.properties.values():
            if generated or prop.span == node.span:  # (the span of an added phandle)
                continue
            text = _text_at(src, prop.span.line, prop.span.column, prop.span.end_line,
                            prop.span.end_column)
            assert text.endswith(";"), (prop.name, text)
            for pc in prop.pieces:
                if pc.span == node.span or pc.span.file != str(path):
                    continue  # generated (phandle) or from another file
                t = _text_at(src, pc.span.line, pc.span.column, pc.span.end_line,
                             pc.span.end_column)
                k = pc.kind.value
                assert t[:1] == first.get(k, t[:1]) and t[-1:] == last.get(k, t[-1:]), (k, t)
                if k == "cell":
                    assert t[0] in "0123456789'(", t


def test_cpp_on_text_that_is_not_the_file_on_disk(tmp_path: Path) -> None:
    (tmp_path / "part.dtsi").write_text("/ { from-include = <1>; };\n")
    main = tmp_path / "main.dts"
    main.write_text("/dts-v1/;\n/ { };\n")
    edited = b'/dts-v1/;\n#define V 7\n#include "part.dtsi"\n/ { v = <V>; };\n'
    tree = parse_dts(edited, str(main), cpp=True)
    assert tree.root.properties["v"].cells() == [7]
    assert tree.root.properties["v"].span.file == str(main)
    assert tree.root.properties["v"].span.line == 4
    assert tree.root.properties["from-include"].span.file.endswith("part.dtsi")
