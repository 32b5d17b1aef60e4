"""`to_dts` writes DTS that dtc compiles back to the very same DTB (checked live)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from test_dtb_writer import SAMPLE_DTS, SPAN, dtc, trees

from evtchn_spec.grammar import load
from evtchn_spec.grammar.dtb import read_dtb, write_dtb
from evtchn_spec.grammar.dump import dtc_guessed_boot_cpuid, to_dts
from evtchn_spec.grammar.errors import InputError
from evtchn_spec.grammar.tree import MemReserve, Node, Piece, PieceKind, Property, Tree

DTC_EXAMPLES = int(os.environ.get("EVTCHN_SPEC_DTC_EXAMPLES", "60"))
labels = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,10}", fullmatch=True)


def load_dts(src: bytes) -> Tree:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "in.dts"
        path.write_bytes(src)
        return load(path)


def compile_dts(tree: Tree, text: str) -> bytes:
    args = ["-I", "dts", "-O", "dtb"]
    if tree.boot_cpuid_phys != dtc_guessed_boot_cpuid(tree):
        args += ["-b", str(tree.boot_cpuid_phys)]
    res = dtc(args, text.encode())
    assert res.returncode == 0, res.stderr.decode(errors="replace") + "\n" + text
    return res.stdout


@st.composite
def labelled_trees(draw: st.DrawFn) -> Tree:
    tree = draw(trees())
    used: set[str] = set()
    fresh = labels.filter(lambda x: x not in used)
    for node in tree.walk():
        for _ in range(draw(st.integers(0, 2))):
            lab = draw(fresh)
            used.add(lab)
            node.labels.append(lab)
        for prop in node.properties.values():
            if draw(st.integers(0, 4)) == 0:
                lab = draw(fresh)
                used.add(lab)
                prop.labels.append(lab)
    tree.memreserves = [
        MemReserve(m.address, m.size, m.span, (draw(fresh),) if draw(st.booleans()) else ())
        for m in tree.memreserves]
    tree.plugin = draw(st.booleans())
    return tree


@settings(max_examples=DTC_EXAMPLES, deadline=None)
@given(labelled_trees())
def test_dts_output_compiles_to_the_same_dtb(tree: Tree) -> None:
    text = to_dts(tree)
    assert compile_dts(tree, text) == write_dtb(tree)
    for node in tree.walk():
        for lab in node.labels:
            assert f"{lab}: " in text


def test_dtc_output_of_a_dtb_round_trips_through_our_dts() -> None:
    blob = dtc(["-I", "dts", "-O", "dtb", "-@"], SAMPLE_DTS).stdout
    tree = read_dtb(blob, "s.dtb")
    text = to_dts(tree)
    assert compile_dts(tree, text) == blob
    # The dtc-assigned phandle is printed, so it cannot move on recompiling.
    assert "phandle = <0x1>;" in text


def _prop(value: bytes, *pieces: tuple[int, int, PieceKind]) -> str:
    root = Node("", SPAN)
    root.properties["p"] = Property(
        "p", value, SPAN, pieces=[Piece(o, s, k, SPAN) for o, s, k in pieces])
    text = to_dts(Tree(root, "t"))
    line = next(ln for ln in text.splitlines() if ln.strip().startswith("p"))
    return line.strip()


def test_pieces_give_the_source_shape() -> None:
    c, s, b, r = PieceKind.CELL, PieceKind.STRING, PieceKind.BYTES, PieceKind.REF
    assert _prop(b"a\0\0\0\0\x01\x02", (0, 2, s), (2, 4, c), (6, 1, b)) == \
        'p = "a", <0x1>, [02];'
    assert _prop(b"\1\2\0\0\0\7", (0, 1, c), (1, 1, c), (2, 4, r)) == \
        "p = /bits/ 8 <0x1 0x2>, <0x7>;"
    # Pieces that do not tile the value: fall back to dtc's guess.
    assert _prop(b"\0\0\0\1\0\0\0\2", (0, 4, c)) == "p = <0x1 0x2>;"
    assert _prop(b"ab\0", (0, 3, c)) == 'p = "ab";'


def test_phandle_cells_name_their_label_in_a_comment() -> None:
    src = b"/dts-v1/; / { a: x { }; y { p = <1 &a>, &a; q = <&{/x}>; }; };"
    tree = load_dts(src)
    text = to_dts(tree)
    assert "p = <0x1 0x1 /* &a */>, \"/x\";" in text
    assert "q = <0x1 /* &{/x} */>;" in text
    assert compile_dts(tree, text) == dtc(["-I", "dts", "-O", "dtb"], src).stdout


def test_guess_matches_dtc_decompiler_shapes() -> None:
    assert _prop(b"ok\0yes\0") == 'p = "ok", "yes";'
    assert _prop(b"\0\0\0\x10") == "p = <0x10>;"
    assert _prop(b"\x01\x02\x03") == "p = [01 02 03];"
    assert _prop(b"") == "p;"
    assert _prop(b'q"\\\n\t\0') == r'p = "q\"\\\n\t";'
    assert _prop(b'q\x01\0') == "p = [71 01 00];"  # not text to dtc: bytes
    assert _prop(b"\xff\0", (0, 2, PieceKind.STRING)) == r'p = "\xff";'


def test_names_dts_cannot_spell_are_an_input_error() -> None:
    root = Node("", SPAN)
    root.children[""] = Node("", SPAN, parent=root)
    try:
        to_dts(Tree(root, "t"))
    except InputError as err:
        assert "empty name" in err.message
    else:
        raise AssertionError("an empty node name must not be written as DTS")


def test_boot_cpuid_that_dts_cannot_say_is_explained() -> None:
    tree = read_dtb(dtc(["-I", "dts", "-O", "dtb", "-b", "5"], SAMPLE_DTS).stdout, "b.dtb")
    text = to_dts(tree)
    assert "dtc -b 0x5" in text
    assert compile_dts(tree, text) == write_dtb(tree)
