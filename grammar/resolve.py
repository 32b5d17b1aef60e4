"""dtc 1.6.1's tree semantics: merging, deletion, labels, references, phandles, checks.

The parser hands over nodes as it reduces them; `Resolver` applies each top-level
statement immediately, as dtc's parser actions do, then `finish` runs the error-level
checks in dtc's order (checks.c `check_table`), assigns phandles exactly as
`get_node_phandle` does, builds `__symbols__` / `__fixups__` / `__local_fixups__`
and converts everything to the public `Tree`.

dtc keeps deleted nodes and properties in place with a flag (a later definition
revives them at their old position); so do we. Every lookup that dtc does with a tree
walk (labels, phandles) is a dict here, so the whole resolution is linear.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from sys import intern
from typing import Any, cast

from .errors import Diagnostic, InputError, Span
from .tree import (
    MARK_LABEL,
    MARK_PATH,
    MARK_PHANDLE,
    WHOLE_CELL,
    MemReserve,
    Node,
    Piece,
    PieceKind,
    Pieces,
    Property,
    RawRef,
    Tree,
)

NODECHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789,._+-@")
PROPCHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789,._+*#?-")

# marker kinds inside a property value (dtc's REF_PHANDLE, REF_PATH, LABEL); the
# public Property takes phandle/path markers as they are (tree.RawRef)
MK_PHANDLE = MARK_PHANDLE
MK_PATH = MARK_PATH
MK_LABEL = MARK_LABEL

Marker = RawRef  # (offset, kind, ref or label, span)
_SHARE_MAX = 32  # values up to this size are shared between properties in the output
# Labels of a node or property: a tuple of names in order of addition, a deleted label
# written with a NUL in front (a label name never holds one). dtc keeps a deleted label
# in place and revives it there; a 1-tuple is a third of a one-entry dict, and a
# 100k-channel tree has 200k labelled nodes.
_DEAD = "\0"
_NO_LABELS: tuple[str, ...] = ()
_PBYNAME_MIN = 8  # nodes with more properties than this also index them by name
# likewise shared while empty (a tree of 200k leaf nodes would otherwise hold a million
# empty containers); every writer replaces them first
_NO_MARKERS: list[Marker] = []
_NO_KIDS: list[LNode] = []
_NO_PROPS: list[LProp] = []
_NO_KIDS_BY: dict[str, LNode] = {}
_NO_SPANS: list[Span] = []


class LProp(Property):
    """A property as dtc's `struct property` (with the deleted flag).

    It is also the public `Property` it becomes: `_to_tree` fills in the public fields
    in place instead of copying (a 100k-channel tree has 600k properties). The value is
    `value`, the pieces (list or packed) are `_pieces`. While the tree is worked on, the
    public slots for labels and references hold the working forms: `labs` (a tuple, see
    _DEAD) and `markers` (every marker, labels inside the value included), so that a
    property costs two slots less.
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
    ) -> None:
        if span is None:  # already folded into the packed pieces (tree.pack_flat)
            self.name = name
            self.value = data
            self._labels = None
            self._refs = markers or None
            self._span = None
            self._pieces = pieces
        else:
            super().__init__(name, data, span, refs=markers or None, pieces=pieces)
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
        return cast(tuple[str, ...], self._labels) or _NO_LABELS

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
        self.children: list[LNode] = _NO_KIDS
        self.cbyname: dict[str, LNode] = _NO_KIDS_BY
        self.labs: tuple[str, ...] = _NO_LABELS  # see _DEAD
        self.deleted = False
        self.omit = False
        self.referenced = False
        self.phandle = 0
        self.dup = False  # two props or two children share a name
        self.other_spans: list[Span] = _NO_SPANS

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
        if self.children is _NO_KIDS:
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
    return [k for k in reversed(labels) if k[0] != _DEAD]


def label_names(labels: tuple[str, ...]) -> list[str]:
    """Every label name, deleted or not, in order of addition."""
    return [k[1:] if k[0] == _DEAD else k for k in labels]


def add_label(owner: LNode | LProp, label: str) -> None:
    """dtc's add_label: a known label is revived in place, a new one is added."""
    labels = owner.labs
    if label in labels:
        return
    dead = _DEAD + label
    if dead in labels:
        i = labels.index(dead)
        owner.labs = (*labels[:i], label, *labels[i + 1 :])
    else:
        owner.labs = (*labels, label)


def _kill_labels(owner: LNode | LProp) -> None:
    labels = owner.labs
    if labels:
        owner.labs = tuple(k if k[0] == _DEAD else _DEAD + k for k in labels)


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
                _kill_labels(p)
        _kill_labels(n)


def _marker_span(p: LProp, m: Marker) -> Span:
    """A marker's span: its own, or that of the piece it wrote (see tree.RawRef)."""
    sp = m[3]
    if sp is None:
        piece = p.piece_at(m[0])
        assert piece is not None, "a marker without a span or a piece"
        sp = piece.span
    return sp


def _live_label_uses(root: LNode) -> Iterator[str]:
    """Every live label of the tree: on nodes, on properties, inside values."""
    for node in _preorder(root):
        yield from (lab for lab in node.labs if lab[0] != _DEAD)
        for p in node.props:
            if not p.deleted:
                yield from (lab for lab in p.labs if lab[0] != _DEAD)
                yield from (m[2] for m in p.markers if m[1] == MK_LABEL)


def _preorder(root: LNode) -> Iterator[LNode]:
    stack = [root]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(reversed([c for c in n.children if not c.deleted]))


@dataclass(slots=True)
class _Fail:
    span: Span
    message: str


@dataclass(slots=True)
class Resolver:
    """Holds the tree while it is parsed, then turns it into a `Tree`."""

    source: str
    plugin: bool = False
    symbols: bool = False
    root: LNode | None = None
    memreserves: list[MemReserve] = field(default_factory=list)
    # label -> the node(s) that ever had it (a list only when there are several)
    label_owners: dict[str, LNode | list[LNode]] = field(default_factory=dict)
    warnings: list[Diagnostic] = field(default_factory=list)
    next_fragment: int = 0
    boot_cpuid: int = 0
    ph_counter: list[int] = field(default_factory=lambda: [1])  # dtc's static counter

    # ---------------- labels and lookups ----------------
    def note_label(self, node: LNode, label: str) -> None:
        owners = self.label_owners.get(label)
        if owners is None:
            self.label_owners[label] = node
        elif isinstance(owners, list):
            if node not in owners:
                owners.append(node)
        elif owners is not node:
            self.label_owners[label] = [owners, node]

    def is_live(self, node: LNode) -> bool:
        n: LNode | None = node
        top = node
        while n is not None:
            if n.deleted:
                return False
            top = n
            n = n.parent
        return top is self.root

    def by_label(self, label: str) -> LNode | None:
        """dtc's get_node_by_label: the first live node in tree order with that label."""
        owners = self.label_owners.get(label)
        if owners is None:
            return None
        if not isinstance(owners, list):
            owners = [owners]
        live = [o for o in owners if label in o.labs and self.is_live(o)]
        if not live:
            return None
        if len(live) == 1:
            return live[0]
        assert self.root is not None
        wanted = set(map(id, live))
        for n in _preorder(self.root):
            if id(n) in wanted:
                return n
        return None  # pragma: no cover - live nodes are in the tree

    def by_path(self, path: str) -> LNode | None:
        """dtc's get_node_by_path: exact component names (no unit-address guessing)."""
        node = self.root
        if node is None:
            return None
        p = path
        while True:
            if not p:
                return None if node.deleted else node
            p = p.lstrip("/")
            i = p.find("/")
            comp, rest = (p, None) if i < 0 else (p[:i], p[i + 1 :])
            child = node.get_child(comp)
            if child is None:
                return None
            if rest is None:
                return child
            node = child
            p = rest

    def by_ref(self, ref: str) -> LNode | None:
        if ref == "/":
            return self.root
        if ref.startswith("/"):
            return self.by_path(ref)
        return self.by_label(ref)

    def register_subtree(self, node: LNode) -> None:
        """Index the labels of a subtree that just became part of the tree."""
        stack = [node]
        while stack:
            n = stack.pop()
            for lab in label_names(n.labs):
                self.note_label(n, lab)
            stack.extend(n.children)

    # ---------------- top-level statements (dtc-parser.y `devicetree`) ----------------
    def root_def(self, node: LNode) -> None:
        node.name = ""
        if self.root is None:
            self.root = node
            self.register_subtree(node)
        else:
            self.merge(self.root, node)

    def first_ref_def(self, ref: str, ref_span: Span, node: LNode) -> None:
        if not self.plugin:
            raise InputError(ref_span, f"Label or path {ref} not found")
        self.root = LNode("", node.span)
        self.add_orphan(ref, ref_span, node)

    def ref_def(self, ref: str, ref_span: Span, node: LNode, label: str | None) -> None:
        assert self.root is not None
        if label is None and self.plugin and ref.startswith("/"):
            self.add_orphan(ref, ref_span, node)
            return
        target = self.by_ref(ref)
        if target is None:
            if label is None and self.plugin:
                self.add_orphan(ref, ref_span, node)
                return
            raise InputError(ref_span, f"Label or path {ref} not found")
        if label is not None:
            add_label(target, label)
            self.note_label(target, label)
        self.merge(target, node)

    def del_ref(self, ref: str, ref_span: Span) -> None:
        target = self.by_ref(ref)
        if target is None:
            raise InputError(ref_span, f"Label or path {ref} not found")
        delete_node(target)

    def omit_ref(self, ref: str, ref_span: Span) -> None:
        target = self.by_ref(ref)
        if target is None:
            raise InputError(ref_span, f"Label or path {ref} not found")
        target.omit = True

    def add_orphan(self, ref: str, ref_span: Span, node: LNode) -> None:
        """dtc's add_orphan_node: wrap an overlay body into /fragment@N/__overlay__."""
        assert self.root is not None
        if ref.startswith("/"):
            data = ref.encode("latin-1") + b"\0"
            prop = LProp("target-path", data, ref_span,
                         pieces=[Piece(0, len(data), PieceKind.STRING, ref_span)])
        else:
            prop = LProp("target", b"\xff\xff\xff\xff", ref_span,
                         markers=[(0, MK_PHANDLE, ref, ref_span)],
                         pieces=[Piece(0, 4, PieceKind.REF, ref_span)])
        frag = LNode(f"fragment@{self.next_fragment}", ref_span)
        self.next_fragment += 1
        frag.add_prop(prop)
        node.name = "__overlay__"
        frag.add_child(node)
        self.root.add_child(frag)
        self.register_subtree(frag)

    def merge(self, old: LNode, new: LNode) -> None:
        """dtc's merge_nodes, with an explicit stack of frames instead of recursion.

        Children are handled strictly in order and a colliding child is merged
        completely before the next sibling is looked at (a later `/delete-node/` of
        the same name must see the merged node, as in dtc).
        """
        self._merge_head(old, new)
        stack: list[tuple[LNode, LNode, int]] = [(old, new, 0)]
        while stack:
            old, new, i = stack.pop()
            kids = new.children
            while i < len(kids):
                nc = kids[i]
                i += 1
                if nc.deleted:
                    oc = old.cbyname.get(nc.name)
                    if oc is not None:
                        delete_node(oc)
                    continue
                oc = old.cbyname.get(nc.name)
                if oc is not None:
                    stack.append((old, new, i))
                    self._merge_head(oc, nc)
                    stack.append((oc, nc, 0))
                    break
                old.add_child(nc)
                self.register_subtree(nc)

    def _merge_head(self, old: LNode, new: LNode) -> None:
        """The part of merge_nodes before the children: labels, then properties."""
        if old.other_spans is _NO_SPANS:
            old.other_spans = []
        old.other_spans.append(new.span)
        old.deleted = False
        for lab in reversed(label_names(new.labs)):
            add_label(old, lab)
            self.note_label(old, lab)
        for np in new.props:
            if np.deleted:
                op = old.first_prop(np.name)
                if op is not None:
                    op.deleted = True
                    _kill_labels(op)
                continue
            op = old.first_prop(np.name)
            if op is not None:
                for lab in reversed(label_names(np.labs)):
                    add_label(op, lab)
                op.value = np.value
                op.markers = np.markers
                op._pieces = np._pieces
                op.deleted = False
                op.span = np.span
            else:
                old.add_prop(np)

    # ---------------- checks and output ----------------
    def finish(self) -> Tree:
        root = self.root
        assert root is not None
        self.boot_cpuid = self._guess_boot_cpuid(root)
        phandles: dict[int, LNode] = {}
        self._structural_checks(root)
        self._duplicate_labels(root)
        self._explicit_phandles(root, phandles)
        self._references(root, phandles)
        self._omit_unused(root, phandles)
        if self.symbols:
            self._symbols(root, phandles)
        if self.plugin:
            self._fixups(root)
        # the working tree is released while it is converted (parent cycles broken)
        return self._to_tree(root, phandles)

    def _guess_boot_cpuid(self, root: LNode) -> int:
        cpus = self.by_path("/cpus")
        if cpus is None or not cpus.children:
            return 0
        reg = cpus.children[0].get_prop("reg")
        if reg is None or len(reg.value) != 4:
            return 0
        return int.from_bytes(reg.value, "big")

    def _structural_checks(self, root: LNode) -> None:
        """dtc's structural checks (all ERROR in dtc), in dtc's order (STRUCTURE_CHECKS):
        dtc reports the first failure of the earliest check that fails, so each check
        keeps its first failure and the earliest one is raised. One walk over the
        tree runs them all."""
        fails: list[_Fail | None] = [None] * len(STRUCTURE_CHECKS)
        for node in _preorder(root):
            parent = node.parent
            if parent is not None and parent.get_prop(node.name) is not None:
                self.warnings.append(Diagnostic(
                    node.span, f"{node.fullpath()}: node name and property name conflict"))
            for i, check in enumerate(STRUCTURE_CHECKS):
                if fails[i] is None:
                    fails[i] = check(node)
        for f in fails:
            if f is not None:
                raise InputError(f.span, f.message)

    def _duplicate_labels(self, root: LNode) -> None:
        """dtc's duplicate_label check: one owner per label over nodes, props, values."""
        if not self._any_duplicate_label(root):
            return  # the common case, without the bookkeeping the message needs
        # occurrences in check order: (kind, node, prop, marker index, span)
        occ: dict[str, list[tuple[int, int, LNode, LProp | None, int]]] = {}
        order = 0
        for node in _preorder(root):
            for lab in node.dtc_labels():
                occ.setdefault(lab, []).append((0, order, node, None, -1))
                order += 1
            for p in node.props:
                if p.deleted:
                    continue
                for lab in live_labels(p.labs):
                    occ.setdefault(lab, []).append((1, order, node, p, -1))
                    order += 1
                for i, m in enumerate(p.markers):
                    if m[1] == MK_LABEL:
                        occ.setdefault(m[2], []).append((2, order, node, p, i))
                        order += 1
        worst: tuple[int, str, tuple[int, int, LNode, LProp | None, int],
                     tuple[int, int, LNode, LProp | None, int]] | None = None
        for lab, lst in occ.items():
            if len(lst) < 2:
                continue
            canon = min(lst, key=lambda o: (o[0], o[1]))
            first_bad = min((o for o in lst if o is not canon), key=lambda o: o[1])
            if worst is None or first_bad[1] < worst[0]:
                worst = (first_bad[1], lab, first_bad, canon)
        if worst is None:
            return
        _, lab, bad, canon = worst

        def desc(o: tuple[int, int, LNode, LProp | None, int]) -> str:
            s = "value of " if o[0] == 2 else ""
            if o[3] is not None:
                s += f"'{o[3].name}' in "
            return s + o[2].fullpath()

        span = bad[3].span if bad[3] is not None else bad[2].span
        if bad[0] == 2 and bad[3] is not None:
            span = _marker_span(bad[3], bad[3].markers[bad[4]])
        raise InputError(span, f"Duplicate label '{lab}' on {desc(bad)} and {desc(canon)}")

    @staticmethod
    def _any_duplicate_label(root: LNode) -> bool:
        seen: set[str] = set()
        for lab in _live_label_uses(root):
            if lab in seen:
                return True
            seen.add(lab)
        return False

    def _phandle_prop(self, node: LNode, name: str) -> int:
        prop = node.get_prop(name)
        if prop is None:
            return 0
        if len(prop.value) != 4:
            raise InputError(prop.span, f"bad length ({len(prop.value)}) {name} property")
        for m in prop.markers:
            if m[1] == MK_PHANDLE:
                if self.by_ref(m[2]) is not node:
                    raise InputError(prop.span, f"{name} is a reference to another node")
                return 0
        ph = int.from_bytes(prop.value, "big")
        if ph in (0, 0xFFFFFFFF):
            raise InputError(prop.span, f"bad value (0x{ph:x}) in {name} property")
        return ph

    def _explicit_phandles(self, root: LNode, phandles: dict[int, LNode]) -> None:
        for node in _preorder(root):
            if node.first_prop("phandle") is None and node.first_prop("linux,phandle") is None:
                continue
            ph = self._phandle_prop(node, "phandle")
            lph = self._phandle_prop(node, "linux,phandle")
            if not ph and not lph:
                continue
            if ph and lph and ph != lph:
                raise InputError(node.span, "mismatching 'phandle' and 'linux,phandle' properties")
            if lph and not ph:
                ph = lph
            other = phandles.get(ph)
            if other is not None and other is not node:
                raise InputError(
                    node.span, f"duplicated phandle 0x{ph:x} (seen before at {other.fullpath()})"
                )
            node.phandle = ph
            phandles[ph] = node

    def _node_phandle(self, node: LNode, phandles: dict[int, LNode], counter: list[int]) -> int:
        """dtc's get_node_phandle (its static counter is `counter[0]`)."""
        if node.phandle not in (0, 0xFFFFFFFF):
            return node.phandle
        ph = counter[0]
        while ph in phandles:
            ph += 1
        counter[0] = ph
        node.phandle = ph
        phandles[ph] = node
        if node.get_prop("phandle") is None:
            data = ph.to_bytes(4, "big")
            node.add_prop(LProp("phandle", data, node.span, pieces=WHOLE_CELL))
        return ph

    def _references(self, root: LNode, phandles: dict[int, LNode]) -> None:
        """fixup_phandle_references then fixup_path_references (first error of each)."""
        counter = self.ph_counter
        ph_fail: _Fail | None = None
        path_fail: _Fail | None = None
        for node in _preorder(root):
            for p in node.props:
                if p.deleted or not p.markers:
                    continue
                has_path = False
                data: bytearray | None = None
                for m in p.markers:
                    kind = m[1]
                    if kind == MK_PHANDLE:
                        target = self.by_ref(m[2])
                        if target is None:
                            if not self.plugin and ph_fail is None:
                                ph_fail = _Fail(_marker_span(p, m),
                                                "Reference to non-existent node or "
                                                      f'label "{m[2]}"')
                            continue
                        ph = self._node_phandle(target, phandles, counter)
                        if data is None:
                            data = bytearray(p.value)
                        data[m[0] : m[0] + 4] = ph.to_bytes(4, "big")
                        target.referenced = True
                    elif kind == MK_PATH:
                        has_path = True
                if data is not None:
                    p.value = bytes(data)
                if has_path:
                    fail = self._insert_paths(p)
                    if fail is not None and path_fail is None:
                        path_fail = fail
        if ph_fail is not None:
            raise InputError(ph_fail.span, ph_fail.message)
        if path_fail is not None:
            raise InputError(path_fail.span, path_fail.message)

    def _insert_paths(self, p: LProp) -> _Fail | None:
        """dtc's data_insert_at_marker for every REF_PATH marker, shifting what follows."""
        fail: _Fail | None = None
        data = bytearray(p.value)
        markers = list(p.markers)
        pieces = list(p.pieces)
        for i in range(len(markers)):
            off, kind, ref, span = markers[i]
            if kind != MK_PATH:
                continue
            assert span is not None  # only `<&label>` cells leave theirs to the piece
            target = self.by_ref(ref)
            if target is None:
                if fail is None:
                    fail = _Fail(span, f'Reference to non-existent node or label "{ref}"')
                continue
            ins = target.fullpath().encode("latin-1") + b"\0"
            target.referenced = True
            n = len(ins)
            data[off:off] = ins
            for j in range(i + 1, len(markers)):
                o2, k2, r2, s2 = markers[j]
                markers[j] = (o2 + n, k2, r2, s2)
            for j, pc in enumerate(pieces):
                if (pc.kind is PieceKind.PATH and pc.size == 0 and pc.offset == off
                        and pc.span == span):
                    pieces[j] = Piece(off, n, PieceKind.PATH, pc.span)
                    for k in range(j + 1, len(pieces)):
                        q = pieces[k]
                        pieces[k] = Piece(q.offset + n, q.size, q.kind, q.span)
                    break
        p.value = bytes(data)
        p.markers = markers
        p._pieces = pieces
        return fail

    def _omit_unused(self, root: LNode, phandles: dict[int, LNode]) -> None:
        stack = [root]
        while stack:
            n = stack.pop()
            if n.deleted:
                continue
            if n.omit and not n.referenced and not (self.symbols and n.labs):
                delete_node(n, phandles)
                continue
            stack.extend(reversed([c for c in n.children if not c.deleted]))

    def _root_child(self, root: LNode, name: str) -> LNode:
        node = root.get_child(name)
        if node is None:
            node = LNode(name, root.span)
            root.add_child(node)
        return node

    def _symbols(self, root: LNode, phandles: dict[int, LNode]) -> None:
        """dtc -@: /__symbols__ with one path per label; every labelled node gets a phandle."""
        if not any(n.labs for n in _preorder(root)):
            return
        an = self._root_child(root, "__symbols__")
        for node in _preorder(root):
            if not node.labs:
                continue
            for lab in node.dtc_labels():
                if an.get_prop(lab) is not None:
                    self.warnings.append(Diagnostic(
                        node.span, f"label {lab} already exists in /{an.name}"))
                    continue
                path = node.fullpath().encode("latin-1") + b"\0"
                an.add_prop(LProp(lab, path, node.span,
                                  pieces=[Piece(0, len(path), PieceKind.STRING, node.span)]))
            self._node_phandle(node, phandles, self.ph_counter)

    def _fixups(self, root: LNode) -> None:
        """/__fixups__ and /__local_fixups__ for a /plugin/, as dtc 1.6.1 writes them."""
        unresolved: list[tuple[LNode, LProp, Marker]] = []
        local: list[tuple[LNode, LProp, Marker]] = []
        for node in _preorder(root):
            for p in node.props:
                if p.deleted:
                    continue
                for m in p.markers:
                    if m[1] != MK_PHANDLE:
                        continue
                    if self.by_ref(m[2]) is None:
                        unresolved.append((node, p, m))
                    else:
                        local.append((node, p, m))
        if unresolved:
            fn = self._root_child(root, "__fixups__")
            for node, p, m in unresolved:
                path = node.fullpath()
                if ":" in path or ":" in p.name:
                    raise InputError(p.span, "arguments should not contain ':'")
                entry = f"{path}:{p.name}:{m[0]}".encode("latin-1") + b"\0"
                self._append(fn, m[2], entry, _marker_span(p, m), PieceKind.STRING)
        if local:
            lfn = self._root_child(root, "__local_fixups__")
            for node, p, m in local:
                comps: list[str] = []
                w: LNode | None = node
                while w is not None and w.parent is not None:
                    comps.append(w.name)
                    w = w.parent
                wn = lfn
                for comp in reversed(comps):
                    nxt = wn.get_child(comp)
                    if nxt is None:
                        nxt = LNode(comp, node.span)
                        wn.add_child(nxt)
                    wn = nxt
                self._append(wn, p.name, m[0].to_bytes(4, "big"), _marker_span(p, m),
                             PieceKind.CELL)

    @staticmethod
    def _append(node: LNode, name: str, data: bytes, span: Span, kind: PieceKind) -> None:
        p = node.get_prop(name)
        if p is None:
            node.add_prop(LProp(name, data, span, pieces=[Piece(0, len(data), kind, span)]))
        else:
            p._pieces = [*p.pieces, Piece(len(p.value), len(data), kind, span)]
            p.value = p.value + data

    def _to_tree(self, root: LNode, phandles: dict[int, LNode]) -> Tree:
        out_root = Node("", root.span)
        tree = Tree(
            root=out_root,
            source=self.source,
            memreserves=self.memreserves,
            boot_cpuid_phys=self.boot_cpuid,
            plugin=self.plugin,
            warnings=self.warnings,
        )
        # nothing may keep working nodes alive now: each one is freed once converted,
        # so the two trees never coexist in full. The label and phandle indexes become
        # the Tree's (200k entries each at 100k channels): each entry is pointed at the
        # converted node when it is reached, and entries never reached are dropped.
        labels: dict[str, Any] = self.label_owners
        self.label_owners = {}
        self.root = None
        tphandles: dict[int, Any] = phandles
        values: dict[bytes, bytes] = {}
        stack: list[tuple[LNode, Node]] = [(root, out_root)]
        while stack:
            ln, on = stack.pop()
            nlabs = ln.labs
            if nlabs:
                if len(nlabs) != 1 or nlabs[0][0] == _DEAD:
                    nlabs = tuple(ln.dtc_labels())  # else the one live label, as it is
                for lab in nlabs:
                    if type(labels.get(lab)) is not Node:  # the first in tree order
                        labels[lab] = on
            if ln.other_spans:
                on.other_spans = ln.other_spans
            if ln.phandle:
                on.phandle = ln.phandle
                tphandles[ln.phandle] = on
            plist = ln.props
            if any(p.deleted for p in plist):
                plist = [p for p in plist if not p.deleted]
            for p in plist:
                # the working property becomes the public one: fill in its public fields
                markers = p.markers
                if markers and any(m[1] == MK_LABEL for m in markers):
                    # the rest stay raw: Property.refs expands them on access
                    p._refs = [m for m in markers if m[1] != MK_LABEL] or None
                labs = p.labs
                if labs:
                    p._labels = live_labels(labs) or None
                if not p._pieces:
                    p._pieces = None
                p.err_span = None
                # names and short values repeat across thousands of nodes: share them
                p.name = intern(p.name)
                value = bytes(p.value)
                if len(value) <= _SHARE_MAX and value[-1:] == b"\0":
                    # strings repeat ("okay", compatibles); cells rarely do, and caching
                    # every phandle would cost more than it saves
                    value = values.setdefault(value, value)
                p.value = value
            # the list itself is handed over (the Node makes its dict when asked)
            on.adopt(cast(list[Property], plist), nlabs)
            if ln.children:
                children: dict[str, Node] = {}
                pending: list[tuple[LNode, Node]] = []
                for c in ln.children:
                    if c.deleted:
                        _release(c)
                        continue
                    oc = Node(c.name, c.span, parent=on)
                    children[c.name] = oc
                    pending.append((c, oc))
                if children:
                    on.children = children
                stack.extend(reversed(pending))
            # let reference counting free the working node now: keeps the peak down
            ln.parent = None
            ln.props = _NO_PROPS
            ln.pbyname = None
            ln.children = _NO_KIDS
            ln.cbyname = _NO_KIDS_BY
            ln.labs = _NO_LABELS
            ln.other_spans = _NO_SPANS
        for k in [k for k, v in labels.items() if type(v) is not Node]:
            del labels[k]
        for ph in [ph for ph, v in tphandles.items() if type(v) is not Node]:
            del tphandles[ph]
        tree.labels = labels
        tree.phandles = tphandles
        return tree


def _release(node: LNode) -> None:
    """Break the parent cycles of a dropped subtree so reference counting frees it."""
    stack = [node]
    while stack:
        n = stack.pop()
        n.parent = None
        stack.extend(n.children)
        n.children = []


# -- dtc's structural checks (dtc checks.c), one function each: a node's first failure


def _duplicate_node_names(node: LNode) -> _Fail | None:
    """duplicate_node_names: dtc compares every live child with each later sibling,
    deleted or not."""
    if not node.dup:
        return None
    later: dict[str, list[int]] = {}
    for i, c in enumerate(node.children):
        later.setdefault(c.name, []).append(i)
    for i, c in enumerate(node.children):
        if c.deleted:
            continue
        nxt = next((j for j in later[c.name] if j > i), None)
        if nxt is not None:
            return _Fail(node.children[nxt].span, "Duplicate node name")
    return None


def _duplicate_property_names(node: LNode) -> _Fail | None:
    if not node.dup:
        return None
    seen: dict[str, LProp] = {}
    for p in node.props:
        if p.deleted:
            continue
        if p.name in seen:
            return _Fail(seen[p.name].span, "Duplicate property name")
        seen[p.name] = p
    return None


def _node_name_chars(node: LNode) -> _Fail | None:
    bad = next((ch for ch in node.name if ch not in NODECHARS), None)
    return None if bad is None else _Fail(node.span, f"Bad character '{bad}' in node name")


def _node_name_format(node: LNode) -> _Fail | None:
    if "@" in node.name and "@" in node.name.split("@", 1)[1]:
        return _Fail(node.span, "multiple '@' characters in node name")
    return None


def _property_name_chars(node: LNode) -> _Fail | None:
    for p in node.props:
        if p.deleted:
            continue
        bad = next((ch for ch in p.name if ch not in PROPCHARS), None)
        if bad is not None:
            return _Fail(p.span, f"Bad character '{bad}' in property name")
    return None


def _name_is_string(node: LNode) -> _Fail | None:
    namep = node.get_prop("name")
    if namep is None:
        return None
    d = namep.value
    return _Fail(namep.span, "property is not a string") \
        if not d or d[-1] != 0 or 0 in d[:-1] else None


def _name_properties(node: LNode) -> _Fail | None:
    """name_properties: a `name` property must equal the node's base name; a correct
    one is redundant and dtc drops it. dtc looks at the first "name" in the list even
    when it is deleted."""
    first = node.first_prop("name")
    if first is None:
        return None
    base = node.name.split("@", 1)[0].encode("latin-1")
    if len(first.value) != len(base) + 1 or first.value[: len(base)] != base:
        shown = first.value.split(b"\0", 1)[0].decode("latin-1") if first.value else "(null)"
        return _Fail(node.span,
                     f'"name" property is incorrect ("{shown}" instead of base node name)')
    node.props.remove(first)
    byname = node.pbyname
    if byname is not None and byname.get("name") is first:
        del byname["name"]
        other = next((p for p in node.props if p.name == "name"), None)
        if other is not None:
            byname["name"] = other
    return None


# in dtc's order: the earliest check that fails anywhere is the one reported
STRUCTURE_CHECKS: tuple[Callable[[LNode], _Fail | None], ...] = (
    _duplicate_node_names, _duplicate_property_names, _node_name_chars, _node_name_format,
    _property_name_chars, _name_is_string, _name_properties)
