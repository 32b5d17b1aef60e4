"""dtc's working tree: `struct node` and `struct property` as dtc's parser builds and
merges them, deleted entries flagged in place, labels that can die and be revived, and
the walks and lookups every later pass (checks, phandles, overlays, building) shares.

The working property (`LProp`) is also the public `Property` it becomes: building the
public tree fills in its public fields in place instead of copying.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import cast

from .errors import Diagnostic, Span
from .tree import MARK_LABEL, MARK_PATH, MARK_PHANDLE, FileTable, Pieces, Property, RawRef

# marker kinds inside a property value (dtc's REF_PHANDLE, REF_PATH, LABEL); the
# public Property takes phandle/path markers as they are (tree.RawRef)
MK_PHANDLE = MARK_PHANDLE
MK_PATH = MARK_PATH
MK_LABEL = MARK_LABEL

Marker = RawRef  # (offset, kind, ref or label, span)
# Labels of a node or property: a tuple of names in order of addition, a deleted label
# written with a NUL in front (a label name never holds one). dtc keeps a deleted label
# in place and revives it there; a 1-tuple is a third of a one-entry dict, and a
# 100k-channel tree has 200k labelled nodes.
DEAD = "\0"
NO_LABELS: tuple[str, ...] = ()
_PBYNAME_MIN = 8  # nodes with more properties than this also index them by name
# likewise shared while empty (a tree of 200k leaf nodes would otherwise hold a million
# empty containers); every writer replaces them first
_NO_MARKERS: list[Marker] = []
NO_KIDS: list[LNode] = []
NO_PROPS: list[LProp] = []
NO_KIDS_BY: dict[str, LNode] = {}
NO_SPANS: list[Span] = []


class LProp(Property):
    """A property as dtc's `struct property` (with the deleted flag).

    It is also the public `Property` it becomes: build.to_tree fills in the public
    fields in place instead of copying (a 100k-channel tree has 600k properties). While
    the tree is worked on, the public slots for labels and references hold the working
    forms, as Property allows: `labs` (a tuple, see DEAD) and `markers` (every marker,
    labels inside the value included), so that a property costs two slots less.
    """

    __slots__ = ("deleted", "err_span")

    def __init__(
        self,
        name: str,
        data: bytes,
        span: Span | None,
        markers: list[Marker] | None = None,
        pieces: Pieces | None = None,
        deleted: bool = False,
        err_span: Span | None = None,
        files: FileTable | None = None,
    ) -> None:
        """`span` None: already folded into the packed pieces (tree.pack_flat); `files`
        is the parse's table packed pieces are numbered in."""
        if span is None:
            self._init_folded(name, data, markers or None, pieces, files)  # type: ignore[arg-type]
        else:
            super().__init__(name, data, span, refs=markers or None, pieces=pieces,
                             files=files)
        self.deleted = deleted
        self.err_span = err_span  # where dtc's parser would fail if this was misplaced

    @property
    def markers(self) -> list[Marker]:
        return cast(list[Marker], self._refs) or _NO_MARKERS

    @markers.setter
    def markers(self, value: list[Marker]) -> None:
        self._refs = value or None

    @property
    def labs(self) -> tuple[str, ...]:
        return cast(tuple[str, ...], self._labels) or NO_LABELS

    @labs.setter
    def labs(self, value: tuple[str, ...]) -> None:
        self._labels = value or None  # type: ignore[assignment]


class LNode:
    """A node as dtc's `struct node`: ordered lists plus first-by-name dicts."""

    __slots__ = (
        "cbyname",
        "children",
        "deleted",
        "dup",
        "labs",
        "name",
        "omit",
        "other_spans",
        "parent",
        "pbyname",
        "phandle",
        "props",
        "referenced",
        "span",
    )

    def __init__(self, name: str, span: Span) -> None:
        self.name = name
        self.span = span
        self.parent: LNode | None = None
        self.props: list[LProp] = []
        # name -> first property of that name (deleted or not), only for big nodes:
        # small ones are scanned (see first_prop)
        self.pbyname: dict[str, LProp] | None = None
        self.children: list[LNode] = NO_KIDS
        self.cbyname: dict[str, LNode] = NO_KIDS_BY
        self.labs: tuple[str, ...] = NO_LABELS  # see DEAD
        self.deleted = False
        self.omit = False
        self.referenced = False
        self.phandle = 0
        self.dup = False  # two props or two children share a name
        self.other_spans: list[Span] = NO_SPANS

    # -- building (dtc's build_node / add_property / add_child) --
    def add_prop(self, p: LProp) -> None:
        props = self.props
        byname = self.pbyname
        if byname is not None:
            props.append(p)
            if p.name in byname:
                self.dup = True
            else:
                byname[p.name] = p
            return
        name = p.name
        for q in props:
            if q.name == name:
                self.dup = True
                break
        props.append(p)
        if len(props) > _PBYNAME_MIN:
            byname = self.pbyname = {}
            for q in props:
                byname.setdefault(q.name, q)

    def first_prop(self, name: str) -> LProp | None:
        """The first property of that name in list order, deleted or not."""
        byname = self.pbyname
        if byname is not None:
            return byname.get(name)
        for p in self.props:
            if p.name == name:
                return p
        return None

    def add_child(self, c: LNode) -> None:
        c.parent = self
        if self.children is NO_KIDS:
            self.children = []
            self.cbyname = {}
        self.children.append(c)
        if c.name in self.cbyname:
            self.dup = True
        else:
            self.cbyname[c.name] = c

    # -- accessors that skip deleted entries, like dtc's for_each_* --
    def get_prop(self, name: str) -> LProp | None:
        p = self.first_prop(name)
        if p is None or not p.deleted:
            return p
        if self.dup:
            for q in self.props:
                if q.name == name and not q.deleted:
                    return q
        return None

    def get_child(self, name: str) -> LNode | None:
        c = self.cbyname.get(name)
        if c is None or not c.deleted:
            return c
        if self.dup:
            for d in self.children:
                if d.name == name and not d.deleted:
                    return d
        return None

    def fullpath(self) -> str:
        parts: list[str] = []
        n: LNode | None = self
        while n is not None and n.parent is not None:
            parts.append(n.name)
            n = n.parent
        return "/" + "/".join(reversed(parts))

    def dtc_labels(self) -> list[str]:
        """Live labels in dtc's list order (the most recently added first)."""
        return live_labels(self.labs)


def live_labels(labels: tuple[str, ...]) -> list[str]:
    """The live labels, the most recently added first (dtc's list order)."""
    return [k for k in reversed(labels) if k[0] != DEAD]


def label_names(labels: tuple[str, ...]) -> list[str]:
    """Every label name, deleted or not, in order of addition."""
    return [k[1:] if k[0] == DEAD else k for k in labels]


def add_label(owner: LNode | LProp, label: str) -> None:
    """dtc's add_label: a known label is revived in place, a new one is added."""
    labels = owner.labs
    if label in labels:
        return
    dead = DEAD + label
    if dead in labels:
        i = labels.index(dead)
        owner.labs = (*labels[:i], label, *labels[i + 1 :])
    else:
        owner.labs = (*labels, label)


def kill_labels(owner: LNode | LProp) -> None:
    labels = owner.labs
    if labels:
        owner.labs = tuple(k if k[0] == DEAD else DEAD + k for k in labels)


def delete_node(node: LNode, phandles: dict[int, LNode] | None = None) -> None:
    """dtc's delete_node: flag the whole subtree, its properties and labels deleted."""
    stack = [node]
    while stack:
        n = stack.pop()
        n.deleted = True
        if phandles is not None and n.phandle and phandles.get(n.phandle) is n:
            del phandles[n.phandle]
        for c in n.children:
            if not c.deleted:
                stack.append(c)
        for p in n.props:
            if not p.deleted:
                p.deleted = True
                kill_labels(p)
        kill_labels(n)


def marker_span(p: LProp, m: Marker) -> Span:
    """A marker's span: its own, or that of the piece it wrote (see tree.RawRef)."""
    sp = m[3]
    if sp is None:
        piece = p.piece_at(m[0])
        assert piece is not None, "a marker without a span or a piece"
        sp = piece.span
    return sp


def live_label_uses(root: LNode) -> Iterator[str]:
    """Every live label of the tree: on nodes, on properties, inside values."""
    for node in preorder(root):
        yield from (lab for lab in node.labs if lab[0] != DEAD)
        for p in node.props:
            if not p.deleted:
                yield from (lab for lab in p.labs if lab[0] != DEAD)
                yield from (m[2] for m in p.markers if m[1] == MK_LABEL)


def preorder(root: LNode) -> Iterator[LNode]:
    stack = [root]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(reversed([c for c in n.children if not c.deleted]))



@dataclass(slots=True)
class Fail:
    """A check's first failure (dtc reports the first failure of the earliest check)."""

    span: Span
    message: str


@dataclass(slots=True)
class Finishing:
    """What the passes after the parse share: the tree, its reference lookup, the
    phandle index they fill, dtc's phandle counter and the warnings."""

    root: LNode
    by_ref: Callable[[str], LNode | None]
    plugin: bool
    symbols: bool
    warnings: list[Diagnostic]
    counter: list[int]  # dtc's static phandle counter
    phandles: dict[int, LNode] = field(default_factory=dict)
