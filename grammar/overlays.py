"""The overlay machinery of dtc: /__symbols__ for `-@` (one path per label, a phandle
for every labelled node) and, for a /plugin/, /__fixups__ (references left for the
base tree) and /__local_fixups__ (where the overlay's own phandles sit), as dtc 1.6.1
writes them."""

from __future__ import annotations

from .errors import Diagnostic, InputError, Span
from .phandles import node_phandle
from .tree import Piece, PieceKind
from .worktree import MK_PHANDLE, Finishing, LNode, LProp, Marker, marker_span, preorder


def _root_child(root: LNode, name: str) -> LNode:
    node = root.get_child(name)
    if node is None:
        node = LNode(name, root.span)
        root.add_child(node)
    return node


def symbols(run: Finishing) -> None:
    """dtc -@: /__symbols__ with one path per label; every labelled node gets a phandle."""
    root = run.root
    if not any(n.labs for n in preorder(root)):
        return
    an = _root_child(root, "__symbols__")
    for node in preorder(root):
        if not node.labs:
            continue
        for lab in node.dtc_labels():
            if an.get_prop(lab) is not None:
                run.warnings.append(Diagnostic(
                    node.span, f"label {lab} already exists in /{an.name}"))
                continue
            path = node.fullpath().encode("latin-1") + b"\0"
            an.add_prop(LProp(lab, path, node.span,
                              pieces=[Piece(0, len(path), PieceKind.STRING, node.span)]))
        node_phandle(run, node)


def fixups(run: Finishing) -> None:
    """/__fixups__ and /__local_fixups__ for a /plugin/, as dtc 1.6.1 writes them."""
    unresolved: list[tuple[LNode, LProp, Marker]] = []
    local: list[tuple[LNode, LProp, Marker]] = []
    root = run.root
    for node in preorder(root):
        for p in node.props:
            if p.deleted:
                continue
            for m in p.markers:
                if m[1] != MK_PHANDLE:
                    continue
                if run.by_ref(m[2]) is None:
                    unresolved.append((node, p, m))
                else:
                    local.append((node, p, m))
    if unresolved:
        fn = _root_child(root, "__fixups__")
        for node, p, m in unresolved:
            path = node.fullpath()
            if ":" in path or ":" in p.name:
                raise InputError(p.span, "arguments should not contain ':'")
            entry = f"{path}:{p.name}:{m[0]}".encode("latin-1") + b"\0"
            _append(fn, m[2], entry, marker_span(p, m), PieceKind.STRING)
    if local:
        lfn = _root_child(root, "__local_fixups__")
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
            _append(wn, p.name, m[0].to_bytes(4, "big"), marker_span(p, m),
                         PieceKind.CELL)


def _append(node: LNode, name: str, data: bytes, span: Span, kind: PieceKind) -> None:
    p = node.get_prop(name)
    if p is None:
        node.add_prop(LProp(name, data, span, pieces=[Piece(0, len(data), kind, span)]))
    else:
        p.pieces = [*p.pieces, Piece(len(p.value), len(data), kind, span)]
        p.value = p.value + data
