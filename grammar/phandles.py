"""Phandles and references, as dtc's checks.c fixes them up: explicit `phandle`
values, a phandle for every node a `<&ref>` names (dtc's get_node_phandle and its
counter), `<&ref>` cells filled in, `&ref` paths inserted into values, and
/omit-if-no-ref/ nodes nobody referenced dropped. checks.CHECKS runs them in dtc's
order."""

from __future__ import annotations

from collections.abc import Callable

from .errors import InputError
from .tree import WHOLE_CELL, Piece, PieceKind
from .worktree import (
    MK_PATH,
    MK_PHANDLE,
    Fail,
    Finishing,
    LNode,
    LProp,
    delete_node,
    marker_span,
    preorder,
)


def _phandle_prop(run: Finishing, node: LNode, name: str) -> int:
    prop = node.get_prop(name)
    if prop is None:
        return 0
    if len(prop.value) != 4:
        raise InputError(prop.span, f"bad length ({len(prop.value)}) {name} property")
    for m in prop.markers:
        if m[1] == MK_PHANDLE:
            if run.by_ref(m[2]) is not node:
                raise InputError(prop.span, f"{name} is a reference to another node")
            return 0
    ph = int.from_bytes(prop.value, "big")
    if ph in (0, 0xFFFFFFFF):
        raise InputError(prop.span, f"bad value (0x{ph:x}) in {name} property")
    return ph


def explicit_phandles(run: Finishing) -> None:
    """dtc's explicit_phandles: `phandle` / `linux,phandle` values checked and indexed."""
    phandles = run.phandles
    for node in preorder(run.root):
        if node.first_prop("phandle") is None and node.first_prop("linux,phandle") is None:
            continue
        ph = _phandle_prop(run, node, "phandle")
        lph = _phandle_prop(run, node, "linux,phandle")
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


def node_phandle(run: Finishing, node: LNode) -> int:
    """dtc's get_node_phandle (its static counter is `run.counter[0]`)."""
    phandles = run.phandles
    counter = run.counter
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


def references(run: Finishing) -> None:
    """fixup_phandle_references then fixup_path_references (first error of each)."""
    by_ref = run.by_ref
    ph_fail: Fail | None = None
    path_fail: Fail | None = None
    for node in preorder(run.root):
        for p in node.props:
            if p.deleted or not p.markers:
                continue
            has_path = False
            data: bytearray | None = None
            for m in p.markers:
                kind = m[1]
                if kind == MK_PHANDLE:
                    target = by_ref(m[2])
                    if target is None:
                        if not run.plugin and ph_fail is None:
                            ph_fail = Fail(marker_span(p, m),
                                            "Reference to non-existent node or "
                                                  f'label "{m[2]}"')
                        continue
                    ph = node_phandle(run, target)
                    if data is None:
                        data = bytearray(p.value)
                    data[m[0] : m[0] + 4] = ph.to_bytes(4, "big")
                    target.referenced = True
                elif kind == MK_PATH:
                    has_path = True
            if data is not None:
                p.value = bytes(data)
            if has_path:
                fail = _insert_paths(by_ref, p)
                if fail is not None and path_fail is None:
                    path_fail = fail
    if ph_fail is not None:
        raise InputError(ph_fail.span, ph_fail.message)
    if path_fail is not None:
        raise InputError(path_fail.span, path_fail.message)


def _insert_paths(by_ref: Callable[[str], LNode | None], p: LProp) -> Fail | None:
    """dtc's data_insert_at_marker for every REF_PATH marker, shifting what follows."""
    fail: Fail | None = None
    data = bytearray(p.value)
    markers = list(p.markers)
    pieces = list(p.pieces)
    for i in range(len(markers)):
        off, kind, ref, span = markers[i]
        if kind != MK_PATH:
            continue
        assert span is not None  # only `<&label>` cells leave theirs to the piece
        target = by_ref(ref)
        if target is None:
            if fail is None:
                fail = Fail(span, f'Reference to non-existent node or label "{ref}"')
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
    p.pieces = pieces
    return fail


def omit_unused_nodes(run: Finishing) -> None:
    """dtc's omit_unused_nodes: a /omit-if-no-ref/ node nothing refers to is deleted
    (kept with -@ when it has a label)."""
    stack = [run.root]
    while stack:
        n = stack.pop()
        if n.deleted:
            continue
        if n.omit and not n.referenced and not (run.symbols and n.labs):
            delete_node(n, run.phandles)
            continue
        stack.extend(reversed([c for c in n.children if not c.deleted]))
