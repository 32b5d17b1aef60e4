"""dtc 1.6.1's tree semantics, statement by statement: the `Resolver` holds dtc's
working tree (worktree.py) while the parser hands over each top-level statement, and
applies it at once, as dtc's parser actions do (a root, an `&ref { }` merge, a
/delete-node/, an overlay fragment); labels and paths are looked up as dtc looks them
up. `finish` then runs dtc's checks in dtc's order (checks.CHECKS, with the phandle
fix-ups of phandles.py), the overlay nodes (overlays.py) and builds the public `Tree`
(build.py).

dtc keeps deleted nodes and properties in place with a flag (a later definition
revives them at their old position); so do we. Every lookup that dtc does with a tree
walk (labels, phandles) is a dict here, so the whole resolution is linear.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .build import to_tree
from .checks import CHECKS
from .errors import Diagnostic, InputError, Span
from .overlays import fixups, symbols
from .tree import MemReserve, Piece, PieceKind, Tree
from .worktree import (
    MK_PHANDLE,
    NO_SPANS,
    Finishing,
    LNode,
    LProp,
    add_label,
    delete_node,
    kill_labels,
    label_names,
    preorder,
)


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
        for n in preorder(self.root):
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
        if old.other_spans is NO_SPANS:
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
                    kill_labels(op)
                continue
            op = old.first_prop(np.name)
            if op is not None:
                for lab in reversed(label_names(np.labs)):
                    add_label(op, lab)
                op.value = np.value
                op.markers = np.markers
                op._take_source(np)
                op.deleted = False
            else:
                old.add_prop(np)

    # ---------------- checks and output ----------------
    def finish(self) -> Tree:
        root = self.root
        assert root is not None
        boot_cpuid = self._guess_boot_cpuid()
        run = Finishing(root, self.by_ref, self.plugin, self.symbols, self.warnings,
                        self.ph_counter)
        for check in CHECKS:
            check(run)
        if self.symbols:
            symbols(run)
        if self.plugin:
            fixups(run)
        # the working tree is released while it is converted (parent cycles broken);
        # the label index becomes the Tree's
        owners = self.label_owners
        self.label_owners = {}
        self.root = None
        return to_tree(run, self.source, self.memreserves, boot_cpuid, owners)

    def _guess_boot_cpuid(self) -> int:
        cpus = self.by_path("/cpus")
        if cpus is None or not cpus.children:
            return 0
        reg = cpus.children[0].get_prop("reg")
        if reg is None or len(reg.value) != 4:
            return 0
        return int.from_bytes(reg.value, "big")
