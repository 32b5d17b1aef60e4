"""dtc 1.6.1's error-level checks (checks.c), one named function each, run in dtc's
order from `CHECKS`: dtc reports the first failure of the earliest check that fails.

The seven structural checks look at one node at a time (`STRUCTURE_CHECKS`, in dtc's
order) and run together in one walk, each keeping its first failure; the rest are
passes over the whole tree. The phandle and reference checks also do dtc's fix-ups
(they assign phandles and fill references in, as dtc's do): they live in phandles.py.
"""

from __future__ import annotations

from collections.abc import Callable

from .errors import Diagnostic, InputError
from .phandles import explicit_phandles, omit_unused_nodes, references
from .worktree import (
    MK_LABEL,
    Fail,
    Finishing,
    LNode,
    LProp,
    live_label_uses,
    live_labels,
    marker_span,
    preorder,
)

NODECHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789,._+-@")
PROPCHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789,._+*#?-")


def structure(run: Finishing) -> None:
    """dtc's structural checks (all ERROR in dtc), in dtc's order (STRUCTURE_CHECKS):
    dtc reports the first failure of the earliest check that fails, so each check
    keeps its first failure and the earliest one is raised. One walk over the
    tree runs them all."""
    fails: list[Fail | None] = [None] * len(STRUCTURE_CHECKS)
    for node in preorder(run.root):
        parent = node.parent
        if parent is not None and parent.get_prop(node.name) is not None:
            run.warnings.append(Diagnostic(
                node.span, f"{node.fullpath()}: node name and property name conflict"))
        for i, check in enumerate(STRUCTURE_CHECKS):
            if fails[i] is None:
                fails[i] = check(node)
    for f in fails:
        if f is not None:
            raise InputError(f.span, f.message)


def duplicate_label(run: Finishing) -> None:
    """dtc's duplicate_label check: one owner per label over nodes, props, values."""
    root = run.root
    if not _any_duplicate_label(root):
        return  # the common case, without the bookkeeping the message needs
    # occurrences in check order: (kind, node, prop, marker index, span)
    occ: dict[str, list[tuple[int, int, LNode, LProp | None, int]]] = {}
    order = 0
    for node in preorder(root):
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
        span = marker_span(bad[3], bad[3].markers[bad[4]])
    raise InputError(span, f"Duplicate label '{lab}' on {desc(bad)} and {desc(canon)}")


def _any_duplicate_label(root: LNode) -> bool:
    seen: set[str] = set()
    for lab in live_label_uses(root):
        if lab in seen:
            return True
        seen.add(lab)
    return False


# ---- the structural checks, one function each: a node's first failure


def _duplicate_node_names(node: LNode) -> Fail | None:
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
            return Fail(node.children[nxt].span, "Duplicate node name")
    return None


def _duplicate_property_names(node: LNode) -> Fail | None:
    if not node.dup:
        return None
    seen: dict[str, LProp] = {}
    for p in node.props:
        if p.deleted:
            continue
        if p.name in seen:
            return Fail(seen[p.name].span, "Duplicate property name")
        seen[p.name] = p
    return None


def _node_name_chars(node: LNode) -> Fail | None:
    bad = next((ch for ch in node.name if ch not in NODECHARS), None)
    return None if bad is None else Fail(node.span, f"Bad character '{bad}' in node name")


def _node_name_format(node: LNode) -> Fail | None:
    if "@" in node.name and "@" in node.name.split("@", 1)[1]:
        return Fail(node.span, "multiple '@' characters in node name")
    return None


def _property_name_chars(node: LNode) -> Fail | None:
    for p in node.props:
        if p.deleted:
            continue
        bad = next((ch for ch in p.name if ch not in PROPCHARS), None)
        if bad is not None:
            return Fail(p.span, f"Bad character '{bad}' in property name")
    return None


def _name_is_string(node: LNode) -> Fail | None:
    namep = node.get_prop("name")
    if namep is None:
        return None
    d = namep.value
    return Fail(namep.span, "property is not a string") \
        if not d or d[-1] != 0 or 0 in d[:-1] else None


def _name_properties(node: LNode) -> Fail | None:
    """name_properties: a `name` property must equal the node's base name; a correct
    one is redundant and dtc drops it. dtc looks at the first "name" in the list even
    when it is deleted."""
    first = node.first_prop("name")
    if first is None:
        return None
    base = node.name.split("@", 1)[0].encode("latin-1")
    if len(first.value) != len(base) + 1 or first.value[: len(base)] != base:
        shown = first.value.split(b"\0", 1)[0].decode("latin-1") if first.value else "(null)"
        return Fail(node.span,
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
STRUCTURE_CHECKS: tuple[Callable[[LNode], Fail | None], ...] = (
    _duplicate_node_names, _duplicate_property_names, _node_name_chars, _node_name_format,
    _property_name_chars, _name_is_string, _name_properties)


# dtc's check_table order for the checks that can fail a build: the structural ones,
# duplicate_label, explicit_phandles, fixup_phandle_references and
# fixup_path_references (one walk: `references`), omit_unused_nodes
CHECKS: tuple[Callable[[Finishing], None], ...] = (
    structure, duplicate_label, explicit_phandles, references, omit_unused_nodes)
