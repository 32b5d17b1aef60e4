"""The compact forms inside grammar/tree.py behave exactly like the plain ones.

A 100k-channel tree is kept small by packing (pieces, a property's span folded into
them, raw references, a shared WHOLE_CELL piece, nodes that adopt a property list and
make no empty containers). Every public attribute must still read and write as on a
plain object; these tests hold that for all inputs.
"""

from __future__ import annotations

from dataclasses import astuple
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evtchn_spec.grammar import load
from evtchn_spec.grammar.errors import Span
from evtchn_spec.grammar.tree import (
    MARK_PATH,
    MARK_PHANDLE,
    PIECE_KIND_INDEX,
    WHOLE_CELL,
    FileTable,
    Node,
    Piece,
    PieceKind,
    Property,
    Ref,
    RefKind,
    flat_pieces,
    pack_flat,
    pack_pieces,
    unpack_pieces,
)

FILES = st.sampled_from(["a.dts", "dir/b.dtsi", "<stdin>"])
POS = st.integers(min_value=1, max_value=2**31 - 1)
BIG = st.integers(min_value=-(2**40), max_value=2**40)  # some do not fit 32 bits


@st.composite
def spans(draw: st.DrawFn, file: str | None = None) -> Span:
    f = file if file is not None else draw(FILES)
    ints = draw(st.lists(st.one_of(POS, BIG), min_size=4, max_size=4))
    return Span(f, *ints)


@st.composite
def piece_lists(draw: st.DrawFn) -> list[Piece]:
    f = draw(FILES)
    n = draw(st.integers(min_value=1, max_value=5))
    return [Piece(draw(st.integers(0, 1000)), draw(st.integers(0, 64)),
                  draw(st.sampled_from(list(PieceKind))),
                  draw(spans(draw(st.sampled_from([f, f, "other.dtsi"])))))
            for _ in range(n)]


@given(piece_lists(), spans())
def test_a_property_reads_back_its_span_and_pieces(pieces: list[Piece], span: Span) -> None:
    files = FileTable()
    prop = Property("p", b"\0" * 8, span, pieces=pack_pieces(pieces, files), files=files)
    assert prop.span == span
    off = pieces[-1].offset
    assert prop.piece_at(off) == next((p for p in pieces if p.offset <= off < p.offset + p.size),
                                      None)
    assert prop.pieces == pieces
    assert prop.span == span  # still, once the pieces are expanded


@given(piece_lists(), spans(), piece_lists(), spans())
def test_assigning_pieces_or_span_replaces_only_that(pieces: list[Piece], span: Span,
                                                     other: list[Piece], other_span: Span
                                                     ) -> None:
    files = FileTable()
    prop = Property("p", b"", span, pieces=pack_pieces(pieces, files), files=files)
    prop.pieces = other
    assert (prop.span, prop.pieces) == (span, other)
    prop.span = other_span
    assert (prop.span, prop.pieces) == (other_span, other)
    prop2 = Property("p", b"", span, pieces=pack_pieces(pieces, files), files=files)
    prop2.span = other_span
    assert (prop2.span, prop2.pieces) == (other_span, pieces)


@given(piece_lists())
def test_unpack_inverts_pack(pieces: list[Piece]) -> None:
    files = FileTable()
    assert unpack_pieces(pack_pieces(pieces, files), files) == pieces


@given(piece_lists(), st.one_of(st.none(), spans()))
def test_flat_packing_is_pack_pieces(pieces: list[Piece], span: Span | None) -> None:
    """The parser's direct packing (ints, the span folded in) means what pack_pieces and
    Property's own folding mean."""
    f = pieces[0].span.file
    pieces = [Piece(p.offset, p.size, p.kind, Span(f, *astuple(p.span)[1:])) for p in pieces]
    flat = [x for p in pieces for x in (p.offset, p.size, PIECE_KIND_INDEX[p.kind],
                                         *astuple(p.span)[1:])]
    assert flat_pieces(f, flat) == pieces
    sp = None if span is None else Span(f, *astuple(span)[1:])
    files = FileTable()
    packed = pack_flat(f, flat, files, None if sp is None else astuple(sp)[1:])
    if packed is None:  # a number beyond 32 bits
        assert pack_pieces(pieces, files) == pieces or sp is not None
        return
    assert unpack_pieces(packed, files) == pieces
    if sp is not None:
        prop = Property("p", b"", sp, pieces=pack_pieces(pieces, files), files=files)
        assert prop._pieces == packed  # Property folds its span the same way


@given(spans(), st.binary(min_size=0, max_size=8))
def test_whole_cell_is_one_cell_at_the_property_span(span: Span, value: bytes) -> None:
    prop = Property("phandle", value, span, pieces=WHOLE_CELL)
    assert prop.piece_at(0) == (Piece(0, len(value), PieceKind.CELL, span) if value else None)
    assert prop.pieces == [Piece(0, len(value), PieceKind.CELL, span)]
    with pytest.raises(ValueError):
        unpack_pieces(WHOLE_CELL, FileTable())


@given(st.lists(st.tuples(st.integers(0, 100), st.sampled_from([MARK_PHANDLE, MARK_PATH]),
                          st.from_regex(r"/?[a-z_][a-z0-9_/]{0,8}", fullmatch=True), spans()),
                min_size=1, max_size=4))
def test_raw_references_read_as_refs(raw: list[tuple[int, int, str, Span]]) -> None:
    prop = Property("p", b"", raw[0][3], refs=raw)
    expected = [Ref(off, RefKind.PHANDLE if kind == MARK_PHANDLE else RefKind.PATH, target,
                    sp, target.startswith("/")) for off, kind, target, sp in raw]
    assert prop.refs == expected
    assert prop.refs is prop.refs  # expanded once, then kept (callers may edit the list)


SPAN = Span("t.dts", 1, 1, 1, 2)


@given(st.lists(st.from_regex(r"[a-z][a-z0-9,-]{0,10}", fullmatch=True), unique=True,
                max_size=20),
       st.lists(st.from_regex(r"[a-z_][a-z0-9_]{0,6}", fullmatch=True), unique=True,
                max_size=3))
def test_an_adopted_property_list_reads_as_the_dict(names: list[str], labels: list[str]
                                                    ) -> None:
    node = Node("n", SPAN)
    props = [Property(n, n.encode(), SPAN) for n in names]
    node.adopt(list(props), tuple(labels))
    assert [p.name for p in node.prop_list()] == names
    assert list(node.label_names()) == labels
    for p in props:
        assert node.get(p.name) is p
    assert node.get("no-such-property") is None
    assert list(node.properties) == names  # the dict, in the same order
    assert node.labels == labels and isinstance(node.labels, list)
    node.properties["extra"] = Property("extra", b"", SPAN)
    node.labels.append("more")
    assert [p.name for p in node.prop_list()] == [*names, "extra"]
    assert node.get("extra") is not None and node.label_names()[-1] == "more"


def test_a_leaf_makes_no_containers_until_asked() -> None:
    root = Node("", SPAN)
    leaf = Node("leaf", SPAN, parent=root)
    root.children["leaf"] = leaf
    assert [n.name for n in root.walk()] == ["", "leaf"]
    assert leaf.child_nodes() == () and leaf.prop_list() == () and leaf.label_names() == ()
    assert leaf.get("x") is None and leaf.compatible() == []
    assert leaf._children is None and leaf._labels is None and leaf._other_spans is None
    leaf.children["kid"] = Node("kid", SPAN, parent=leaf)  # asking makes a real dict
    leaf.other_spans.append(SPAN)
    assert [n.name for n in root.walk()] == ["", "leaf", "kid"]
    assert leaf.other_spans == [SPAN]


def test_a_parsed_tree_uses_the_compact_forms(tmp_path: Path) -> None:
    """The DTS front end really hands over the compact forms (else the memory goal
    of benchmarks/ is lost silently), and they read back what the source says."""
    src = ('/dts-v1/;\n/ {\n\tpeer: a { compatible = "x,y"; };\n'
           '\tb { xen,evtchn = <0xa &peer>; };\n};\n')
    path = tmp_path / "t.dts"
    path.write_text(src)
    tree = load(path)
    a, b = tree.find("/a"), tree.find("/b")
    assert a is not None and b is not None
    compat = a.get("compatible")
    ev = b.get("xen,evtchn")
    ph = a.get("phandle")
    assert compat is not None and ev is not None and ph is not None
    assert isinstance(compat._span, FileTable) and isinstance(compat._pieces, bytes)  # folded
    assert ph._pieces is WHOLE_CELL and ph.span == a.span
    assert ev._refs is not None and type(ev._refs[0]) is tuple  # raw until read
    assert ev._refs[0][3] is None  # a `<&label>` cell's span is its REF piece's
    line = src.splitlines()[3]
    col = line.index("xen,evtchn") + 1
    assert ev.span == Span(str(path), 4, col, 4, col + len("xen,evtchn = <0xa &peer>;"))
    ref_col = line.index("&peer") + 1
    assert ev.refs == [Ref(4, RefKind.PHANDLE, "peer", Span(str(path), 4, ref_col, 4,
                                                             ref_col + 5))]
    assert a.label_names() == ("peer",) and a.labels == ["peer"]
