"""The public `Tree` from dtc's working tree, once every check has passed.

Each working property becomes the public Property it already is (its public fields
filled in place), each working node is converted to a `Node` and released at once,
so the two trees never coexist in full (a 100k-channel tree is millions of objects);
the label and phandle indexes are re-pointed at the converted nodes.
"""

from __future__ import annotations

from sys import intern
from typing import Any, cast

from .tree import MemReserve, Node, Property, Tree
from .worktree import (
    DEAD,
    MK_LABEL,
    NO_KIDS,
    NO_KIDS_BY,
    NO_LABELS,
    NO_PROPS,
    NO_SPANS,
    Finishing,
    LNode,
    Marker,
    live_labels,
)

_SHARE_MAX = 32  # values up to this size are shared between properties in the output


def to_tree(run: Finishing, source: str, memreserves: list[MemReserve], boot_cpuid: int,
            label_owners: dict[str, LNode | list[LNode]]) -> Tree:
    """The public Tree, converted node by node while the working one is freed."""
    root = run.root
    out_root = Node("", root.span)
    tree = Tree(
        root=out_root,
        source=source,
        memreserves=memreserves,
        boot_cpuid_phys=boot_cpuid,
        plugin=run.plugin,
        warnings=run.warnings,
    )
    # nothing may keep working nodes alive now: each one is freed once converted,
    # so the two trees never coexist in full. The label and phandle indexes become
    # the Tree's (200k entries each at 100k channels): each entry is pointed at the
    # converted node when it is reached, and entries never reached are dropped.
    labels: dict[str, Any] = label_owners
    tphandles: dict[int, Any] = run.phandles
    values: dict[bytes, bytes] = {}
    stack: list[tuple[LNode, Node]] = [(root, out_root)]
    while stack:
        ln, on = stack.pop()
        nlabs = ln.labs
        if nlabs:
            if len(nlabs) != 1 or nlabs[0][0] == DEAD:
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
            # (most properties have neither labels nor labels inside their value: their
            # working forms are already the public ones, and nothing is called)
            markers: list[Marker] = p.markers
            labs = p.labs
            if labs or (markers and any(m[1] == MK_LABEL for m in markers)):
                # the other markers stay raw: Property.refs expands them on access
                p._publish([m for m in markers if m[1] != MK_LABEL] or None,
                           live_labels(labs) or None)
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
        ln.props = NO_PROPS
        ln.pbyname = None
        ln.children = NO_KIDS
        ln.cbyname = NO_KIDS_BY
        ln.labs = NO_LABELS
        ln.other_spans = NO_SPANS
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
