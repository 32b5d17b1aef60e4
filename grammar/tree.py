"""The resolved device tree that both front ends (DTS text, DTB bytes) produce.

It is the single hand-off point to the rest of the project: the config model
reads nothing else. A resolved tree has every `/include/`, override, deletion and
reference already applied, phandles assigned exactly as dtc assigns them, and a
`Span` on every node, property, label and reference so that any finding can
point back at the user's source.
"""

from __future__ import annotations

import bisect
import struct
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum
from operator import add, le
from typing import cast

from .errors import Diagnostic, Span


class RefKind(Enum):
    """How a reference is encoded in a property value."""

    PHANDLE = "phandle"  # `<&label>`: a 32-bit cell holding the target's phandle
    PATH = "path"  # `&label` outside cells: the target's full path, NUL-terminated


@dataclass(frozen=True, slots=True)
class Ref:
    """A reference inside a property value (dtc's REF_PHANDLE / REF_PATH markers)."""

    offset: int  # byte offset of the cell or string in the value
    kind: RefKind
    target: str  # a label name, or a path for `&{/path}` / `&/path`
    span: Span
    is_path_target: bool = False  # True when `target` is a path, not a label


class PieceKind(Enum):
    """The source shape of one element of a value, so DTS output keeps it."""

    CELL = "cell"  # one integer element of `< >` (width in Piece.size)
    REF = "ref"  # a `&label` element of `< >`, 4 bytes
    STRING = "string"  # a quoted string, with its NUL
    PATH = "path"  # a `&label` outside cells: path string with its NUL
    BYTES = "bytes"  # a `[ ... ]` byte string


@dataclass(frozen=True, slots=True)
class Piece:
    """One literal element of a property value and where it was written.

    Pieces let a finding point at the exact cell (a port number, a phandle) and let
    `fix` rewrite that cell alone, leaving the rest of the user's text untouched.
    """

    offset: int
    size: int
    kind: PieceKind
    span: Span


# Packed pieces: a 100k-channel tree holds close to a million pieces, and as objects
# (Piece + Span + list + line ints) they were most of its memory. A property built by
# the DTS front end keeps them as one `bytes` of native ints instead: a file number,
# then (offset, size, kind, line, column, end line, end column) per piece. The file
# number is an index into the parse's `FileTable` (one per parse, a handful of names),
# which the property holds. `Property.pieces` turns them back into equal Piece objects.
# A Property also folds its own span into its packed pieces, right after the file
# number (line, column, end line, end column: the lengths 4 + 28n and 20 + 28n tell
# the two forms apart), and `span` reads it back: 400k Span objects less at 100k
# channels, and the line numbers they held.
_PIECE_KINDS: tuple[PieceKind, ...] = tuple(PieceKind)
_KIND_INDEX: dict[PieceKind, int] = {k: i for i, k in enumerate(_PIECE_KINDS)}
_PACK_FIELDS = 7
_PIECE_BYTES = 4 * _PACK_FIELDS
_INT_MIN, _INT_MAX = -(1 << 31), (1 << 31) - 1

Pieces = list[Piece] | bytes  # either form, as `pack_pieces` returns it
PIECE_KIND_INDEX = _KIND_INDEX  # a kind's number in the packed form (for pack_flat)


class FileTable(list[str]):
    """The file names one parse's packed pieces point into, by number. Each parse makes
    its own, and every property packed by it keeps a reference: nothing about a parse
    outlives its tree."""

    __slots__ = ("_numbers",)

    def __init__(self) -> None:
        super().__init__()
        self._numbers: dict[str, int] = {}

    def number(self, fname: str) -> int:
        """fname's number, given on first use."""
        n = self._numbers.get(fname)
        if n is None:
            n = self._numbers[fname] = len(self)
            self.append(fname)
        return n


def _in_order(offs: Sequence[int], sizes: Sequence[int]) -> bool:
    """Whether pieces (offsets, sizes) are in offset order and do not overlap: what the
    packed form promises, so that `Property.piece_at` can bisect it. The front end
    writes values left to right, so its pieces always are; the check runs at C speed
    (map over slices), about 40 ns a piece."""
    rest = offs[1:]
    return all(map(le, offs, rest)) and all(map(le, map(add, offs, sizes), rest))


def pack_pieces(pieces: list[Piece], files: FileTable) -> Pieces:
    """The compact form of `pieces` (all in one file, in offset order, not overlapping),
    its file numbered in `files`, or the list itself if it cannot be packed (several
    files, pieces out of order or overlapping, or a number beyond 32 bits)."""
    if not pieces:
        return pieces
    if not _in_order([p.offset for p in pieces], [p.size for p in pieces]):
        return pieces
    fname = pieces[0].span.file
    flat: list[int] = []
    for p in pieces:
        sp = p.span
        if sp.file != fname:
            return pieces
        flat += (p.offset, p.size, _KIND_INDEX[p.kind], sp.line, sp.column, sp.end_line,
                 sp.end_column)
    if min(flat) < _INT_MIN or max(flat) > _INT_MAX:
        return pieces
    return struct.pack(f"={len(flat) + 1}i", files.number(fname), *flat)


_INT_ARRAY_PACKS = array("i").itemsize == 4  # array('i') is the packed layout


def pack_flat(fname: str, flat: list[int] | array[int], files: FileTable,
              span: tuple[int, int, int, int] | None = None) -> bytes | None:
    """The packed form made straight from ints, 7 a piece as above (the kind by
    PIECE_KIND_INDEX), with a property's span (line, column, end line, end column)
    folded in if given: the DTS front end need not build Piece and Span objects only
    to have them packed. None, as for pack_pieces, if the pieces are out of order or
    overlap, or a number does not fit in 32 bits (see flat_pieces). An array('i') is
    already 32-bit ints in the packed layout: it is copied as it is."""
    if len(flat) > _PACK_FIELDS and not _in_order(flat[0::_PACK_FIELDS],
                                                  flat[1::_PACK_FIELDS]):
        return None  # (one piece, as most properties have, is in order)
    if type(flat) is array and _INT_ARRAY_PACKS and flat.typecode == "i":
        if span is not None and (min(span) < _INT_MIN or max(span) > _INT_MAX):
            return None
        idx = files._numbers.get(fname)  # (the hot path: no method call when known)
        if idx is None:
            idx = files.number(fname)
        head = struct.pack("=i", idx) if span is None else struct.pack("=5i", idx, *span)
        return b"".join((head, memoryview(flat)))  # (one copy, not two)
    ints = list(flat) if span is None else [*span, *flat]
    if ints and (min(ints) < _INT_MIN or max(ints) > _INT_MAX):
        return None
    return struct.pack(f"={len(ints) + 1}i", files.number(fname), *ints)


def flat_pieces(fname: str, flat: list[int] | array[int]) -> list[Piece]:
    """Piece objects for `pack_flat`'s ints (when they cannot be packed)."""
    kinds = _PIECE_KINDS
    return [Piece(flat[i], flat[i + 1], kinds[flat[i + 2]],
                  Span(fname, flat[i + 3], flat[i + 4], flat[i + 5], flat[i + 6]))
            for i in range(0, len(flat), _PACK_FIELDS)]


# The pieces of a value that is one cell written at its property's own span: the
# `phandle` dtc adds to each referenced node (200k of them at 100k channels) keeps this
# instead of a packed piece of its own; `Property.pieces` expands it. unpack_pieces
# refuses it (it needs the property).
WHOLE_CELL: bytes = b"\x00"


class _KindView(Sequence[PieceKind]):
    """Piece kinds read from the packed kind numbers, one at a time."""

    __slots__ = ("_ints",)

    def __init__(self, ints: memoryview) -> None:
        self._ints = ints

    def __len__(self) -> int:
        return len(self._ints)

    def __getitem__(self, i: int) -> PieceKind:  # type: ignore[override]
        return _PIECE_KINDS[self._ints[i]]


def unpack_pieces(pieces: Pieces, files: Sequence[str]) -> list[Piece]:
    """Piece objects for either form (a fresh list each time); `files` is the table the
    packed form was numbered in."""
    if not isinstance(pieces, bytes):
        return list(pieces)
    if len(pieces) < 4:
        raise ValueError("not packed pieces")  # WHOLE_CELL: the property expands it
    ints = struct.unpack(f"={len(pieces) // 4}i", pieces)
    fname = files[ints[0]]
    kinds = _PIECE_KINDS
    first = 1 if (len(pieces) - 4) % _PIECE_BYTES == 0 else 5  # after a folded span
    return [
        Piece(ints[i], ints[i + 1], kinds[ints[i + 2]],
              Span(fname, ints[i + 3], ints[i + 4], ints[i + 5], ints[i + 6]))
        for i in range(first, len(ints), _PACK_FIELDS)
    ]


def _fold_span(pieces: bytes, span: Span, files: Sequence[str]) -> bytes | None:
    """`pieces` (packed, without a span) with `span` folded in, if it fits."""
    if (len(pieces) - 4) % _PIECE_BYTES or files[_unpack_idx(pieces)[0]] != span.file:
        return None
    ints = (span.line, span.column, span.end_line, span.end_column)
    if min(ints) < _INT_MIN or max(ints) > _INT_MAX:
        return None
    return pieces[:4] + _pack_span(*ints) + pieces[4:]


def _folded_span(pieces: bytes, files: Sequence[str]) -> Span:
    idx, line, col, eline, ecol = _unpack_head(pieces)
    return Span(files[idx], line, col, eline, ecol)


_unpack_idx = struct.Struct("=i").unpack_from
_pack_span = struct.Struct("=4i").pack
_unpack_head = struct.Struct("=5i").unpack_from


# Raw references: the DTS front end hands its markers over as they are, (offset, kind,
# target, span) tuples with kind MARK_PHANDLE or MARK_PATH, and `Property.refs` turns
# them into Ref objects on first access (a 100k-channel tree has 200k references that
# `dump` never looks at). A `<&label>` cell's marker may leave its span None: it is the
# span of the REF piece at the same offset.
MARK_PHANDLE = 0
MARK_PATH = 1
MARK_LABEL = 2  # a label inside a value: never part of a Property's refs
RawRef = tuple[int, int, str, Span | None]
Refs = list[Ref] | list[RawRef]


def _expand_refs(raw: list[RawRef], prop: Property) -> list[Ref]:
    refs = []
    for off, kind, target, sp in raw:
        if sp is None:
            piece = prop.piece_at(off)
            assert piece is not None, "a reference without a span or a piece"
            sp = piece.span
        refs.append(Ref(off, RefKind.PHANDLE if kind == MARK_PHANDLE else RefKind.PATH,
                        target, sp, target.startswith("/")))
    return refs


class Property:
    """One property of a resolved node.

    Not a dataclass for memory's sake: `labels` and `refs` are made on first use
    (most properties have neither), `pieces` may be held packed and `span` folded
    into them (see above). Reading and assigning every attribute works as on a plain
    object.

    The slots are private to this class, with one arrangement for the DTS front end's
    working property (grammar/worktree.py's LProp, which becomes the public Property
    in place): while the tree is worked on, `_labels` and `_refs` hold its working
    forms, until `_publish` sets the public ones (where the two differ).
    """

    __slots__ = ("_labels", "_pieces", "_refs", "_span", "name", "value")

    def __init__(
        self,
        name: str,
        value: bytes,
        span: Span,
        labels: list[str] | None = None,
        refs: Refs | None = None,
        pieces: Pieces | None = None,
        files: FileTable | None = None,
    ) -> None:
        """`files` is the table packed `pieces` were numbered in (pack_pieces)."""
        self.name = name
        self.value = value
        self._labels = labels
        self._refs: Refs | None = refs  # Ref objects, or raw tuples (see RawRef)
        # the assignment that gave the final value, or, while it is folded into the
        # packed pieces, the FileTable they are numbered in
        self._span: Span | FileTable = span
        self._pieces: Pieces | None = pieces
        if isinstance(pieces, bytes) and pieces is not WHOLE_CELL:
            assert files is not None, "packed pieces without their file table"
            folded = _fold_span(pieces, span, files)
            if folded is not None:
                self._pieces = folded
                self._span = files
            else:  # (the span in another file than the value, or past 32 bits)
                self._pieces = unpack_pieces(pieces, files)

    def _init_folded(self, name: str, value: bytes, refs: list[RawRef] | None,
                     pieces: bytes, files: FileTable) -> None:
        """The constructor's work for pieces that pack_flat packed with the span already
        folded in (the DTS front end's hot path: no Span object is ever made)."""
        self.name = name
        self.value = value
        self._labels = None
        self._refs = refs
        self._span = files
        self._pieces = pieces

    def _take_source(self, other: Property) -> None:
        """The span and pieces of `other` (a later assignment of the same property)."""
        self._pieces = other._pieces
        self._span = other._span

    def _publish(self, refs: Refs | None, labels: list[str] | None) -> None:
        """The public forms of references and labels, in place of the working ones."""
        self._refs = refs
        self._labels = labels

    @property
    def span(self) -> Span:
        sp = self._span
        if type(sp) is Span:
            return sp
        return _folded_span(self._pieces, sp)  # type: ignore[arg-type]

    @span.setter
    def span(self, value: Span) -> None:
        if type(self._span) is not Span:
            self._unfold()
        self._span = value

    def _unfold(self) -> None:
        """The pieces as a list, the span as a Span (before either is replaced)."""
        files = self._span
        if type(files) is not Span:
            pcs = self._pieces
            self._span = _folded_span(pcs, files)  # type: ignore[arg-type]
            self._pieces = unpack_pieces(pcs, files)  # type: ignore[arg-type]

    @property
    def labels(self) -> list[str]:
        if self._labels is None:
            self._labels = []
        return self._labels

    @labels.setter
    def labels(self, value: list[str]) -> None:
        self._labels = value

    @property
    def refs(self) -> list[Ref]:
        refs = self._refs
        if refs is None:
            refs = self._refs = []
        elif refs and type(refs[0]) is tuple:
            refs = self._refs = _expand_refs(refs, self)
        return cast(list[Ref], refs)

    @refs.setter
    def refs(self, value: list[Ref]) -> None:
        self._refs = value

    @property
    def pieces(self) -> list[Piece]:
        """The value's literal elements; a packed form is expanded (and kept expanded, so
        the list can be changed in place as before)."""
        pcs = self._pieces
        if pcs is None:
            pcs = self._pieces = []
        elif pcs is WHOLE_CELL:
            pcs = self._pieces = [Piece(0, len(self.value), PieceKind.CELL, self.span)]
        elif isinstance(pcs, bytes):
            self._unfold()
            pcs = self._pieces
        return cast(list[Piece], pcs)

    @pieces.setter
    def pieces(self, value: list[Piece]) -> None:
        self._unfold()
        self._pieces = value

    def __repr__(self) -> str:
        return (f"Property(name={self.name!r}, value={self.value!r}, span={self.span!r}, "
                f"labels={self.labels!r}, refs={self.refs!r}, pieces={self.pieces!r})")

    def cells(self) -> list[int]:
        """The value read as big-endian 32-bit cells (trailing odd bytes dropped)."""
        v = self.value
        return [int.from_bytes(v[i : i + 4], "big") for i in range(0, len(v) - len(v) % 4, 4)]

    def piece_fields(self) -> tuple[Sequence[int], Sequence[int], Sequence[PieceKind]]:
        """The pieces' offsets, sizes and kinds as three sequences, read straight from
        the packed form (no Piece object per cell: a value of 10^7 cells stays 28
        bytes a cell)."""
        pcs = self._pieces
        if isinstance(pcs, bytes) and pcs is not WHOLE_CELL:
            ints = memoryview(pcs).cast("i")
            first = 1 if (len(pcs) - 4) % _PIECE_BYTES == 0 else 5  # after a folded span
            return (ints[first::_PACK_FIELDS], ints[first + 1::_PACK_FIELDS],
                    _KindView(ints[first + 2::_PACK_FIELDS]))
        pl = self.pieces
        return [p.offset for p in pl], [p.size for p in pl], [p.kind for p in pl]

    def piece_at(self, offset: int) -> Piece | None:
        """The literal element that wrote the byte at `offset`, if the source had one."""
        pcs = self._pieces
        if isinstance(pcs, bytes) and pcs is not WHOLE_CELL:
            offs, sizes, _ = self.piece_fields()
            # packed pieces are in offset order and do not overlap (pack_pieces and
            # pack_flat refuse others), so the one piece that can cover offset is the
            # last one starting at or before it
            hit = bisect.bisect_right(offs, offset) - 1
            if hit < 0 or offset >= offs[hit] + sizes[hit]:
                return None
            ints = memoryview(pcs).cast("i")
            first = 1 if (len(pcs) - 4) % _PIECE_BYTES == 0 else 5
            at = first + hit * _PACK_FIELDS
            o, n, k, line, col, eline, ecol = ints[at : at + _PACK_FIELDS]
            files = cast(FileTable, self._span)
            return Piece(o, n, _PIECE_KINDS[k], Span(files[ints[0]], line, col, eline, ecol))
        plist = self.pieces if isinstance(pcs, bytes) else (pcs or [])  # (WHOLE_CELL)
        for p in plist:
            if p.offset <= offset < p.offset + p.size:
                return p
        return None

    def strings(self) -> list[str] | None:
        """The value as a NUL-separated string list, or None if it is not one."""
        v = self.value
        if not v or v[-1] != 0:
            return None
        parts = v[:-1].split(b"\0")
        try:
            return [p.decode("ascii") for p in parts]
        except UnicodeDecodeError:
            return None


class Node:
    """One node of a resolved tree.

    Not a dataclass for memory's sake (a 100k-channel tree has 200k leaf nodes):
    `children`, `labels` and `other_spans` are made on first use, so a leaf holds
    no empty containers, and the DTS front end hands over the properties as a list
    (`adopt`) that becomes the `properties` dict only when that is asked for; `get`,
    `prop_list` and `child_nodes` read either form without making anything. Reading
    and assigning every attribute works as on a plain object; the constructor takes
    the same arguments a dataclass would.
    """

    __slots__ = ("_children", "_labels", "_other_spans", "_prop_list", "_properties", "name",
                 "parent", "phandle", "span")

    def __init__(
        self,
        name: str,  # full node name with unit address, "" for the root
        span: Span,  # first definition
        parent: Node | None = None,
        properties: dict[str, Property] | None = None,
        children: dict[str, Node] | None = None,
        labels: list[str] | None = None,
        phandle: int | None = None,  # final value of `phandle`/`linux,phandle`, if any
        other_spans: list[Span] | None = None,  # later re-definitions
    ) -> None:
        self.name = name
        self.span = span
        self.parent = parent
        self._properties = properties
        self._prop_list: list[Property] | None = None
        self._children = children
        self._labels: list[str] | tuple[str, ...] | None = labels
        self.phandle = phandle
        self._other_spans = other_spans

    @property
    def properties(self) -> dict[str, Property]:
        props = self._properties
        if props is None:
            plist = self._prop_list
            props = self._properties = {p.name: p for p in plist} if plist else {}
            self._prop_list = None
        return props

    @properties.setter
    def properties(self, value: dict[str, Property]) -> None:
        self._properties = value
        self._prop_list = None

    def adopt(self, props: list[Property], labels: tuple[str, ...] = ()) -> None:
        """Take `props` (names unique, in order) as this node's properties, and
        `labels` as its labels (made a list only when `labels` is read)."""
        self._properties = None
        self._prop_list = props
        if labels:
            self._labels = labels

    def prop_list(self) -> Sequence[Property]:
        """The properties in order, without making the dict."""
        props = self._properties
        if props is not None:
            return list(props.values())
        return self._prop_list or ()

    def get(self, name: str) -> Property | None:
        props = self._properties
        if props is not None:
            return props.get(name)
        plist = self._prop_list
        if plist is None:
            return None
        if len(plist) > 8:
            return self.properties.get(name)
        for p in plist:
            if p.name == name:
                return p
        return None

    @property
    def children(self) -> dict[str, Node]:
        if self._children is None:
            self._children = {}
        return self._children

    @children.setter
    def children(self, value: dict[str, Node]) -> None:
        self._children = value

    @property
    def labels(self) -> list[str]:
        labels = self._labels
        if type(labels) is not list:
            # none yet, or the front end's tuple (a third of a list's memory)
            labels = self._labels = list(labels or ())
        return labels

    @labels.setter
    def labels(self, value: list[str]) -> None:
        self._labels = value

    def label_names(self) -> Sequence[str]:
        """The labels, without making a list."""
        return self._labels or ()

    @property
    def other_spans(self) -> list[Span]:
        if self._other_spans is None:
            self._other_spans = []
        return self._other_spans

    @other_spans.setter
    def other_spans(self, value: list[Span]) -> None:
        self._other_spans = value

    def __repr__(self) -> str:
        return (f"Node(name={self.name!r}, span={self.span!r}, phandle={self.phandle!r}, "
                f"labels={list(self.label_names())!r}, "
                f"properties={[p.name for p in self.prop_list()]!r}, "
                f"children={[c.name for c in self.child_nodes()]!r})")

    def child_nodes(self) -> Sequence[Node]:
        """The children in order, without making an empty dict for a leaf."""
        kids = self._children
        return list(kids.values()) if kids else ()

    @property
    def path(self) -> str:
        parts: list[str] = []
        node: Node | None = self
        while node is not None and node.parent is not None:
            parts.append(node.name)
            node = node.parent
        return "/" + "/".join(reversed(parts))

    @property
    def basename(self) -> str:
        """The name without the unit address."""
        return self.name.split("@", 1)[0]

    def compatible(self) -> list[str]:
        prop = self.get("compatible")
        if prop is None:
            return []
        return prop.strings() or []

    def walk(self) -> Iterator[Node]:
        """This node and every descendant, in tree (pre-)order, without recursion."""
        stack: list[Node] = [self]
        while stack:
            node = stack.pop()
            yield node
            kids = node._children
            if kids:
                stack.extend(reversed(kids.values()))


@dataclass(frozen=True, slots=True)
class MemReserve:
    address: int
    size: int
    span: Span
    labels: tuple[str, ...] = ()


@dataclass(slots=True, eq=False)
class Tree:
    """A whole resolved device tree, as dtc holds it just before writing a DTB."""

    root: Node
    source: str  # the file the user named
    memreserves: list[MemReserve] = field(default_factory=list)
    boot_cpuid_phys: int = 0
    plugin: bool = False
    is_dtb: bool = False  # read from a DTB rather than DTS
    dtb_version: int = 17
    labels: dict[str, Node] = field(default_factory=dict)  # node labels only
    phandles: dict[int, Node] = field(default_factory=dict)
    warnings: list[Diagnostic] = field(default_factory=list)
    # Every file the tree was read from, in the order first read: `source` first, then
    # each /include/, /incbin/ and (with cpp) #include file. The names are as opened
    # (relative to the working directory, or as the include path made them) or as cpp's
    # line markers give them; a file read twice is named once.
    sources: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.sources:
            self.sources = (self.source,)

    def walk(self) -> Iterator[Node]:
        return self.root.walk()

    def find(self, path: str) -> Node | None:
        """The node at an absolute path, names matched exactly (as dtc's
        get_node_by_path does for `&{/path}`)."""
        if not path.startswith("/"):
            return None
        node = self.root
        for comp in (c for c in path.split("/") if c):
            nxt = node.children.get(comp)
            if nxt is None:
                return None
            node = nxt
        return node

    def by_phandle(self, phandle: int) -> Node | None:
        return self.phandles.get(phandle)
