"""The resolved tree as JSON (the `dump --format json` contract) and as DTS text.

JSON: `{"format": 1, "nodes": {"/path": {"prop": "hex"}}}`, nodes in tree order,
properties in tree order, each value the lowercase hex of the exact DTB bytes. It
holds the node/property tree only: memory reservations and boot_cpuid_phys are not
part of format 1 (`dump --format dtb` keeps them).

DTS: text that dtc 1.6.1 compiles back to the same DTB, byte for byte. Values are
printed as resolved bytes (a `<&label>` becomes its phandle number) so recompiling
cannot move a phandle; labels, memory reservations and `/plugin/` are kept. Where
the parser's pieces tile a value they give its shape (`<...>`, `"..."`, `[...]`);
otherwise the shape is guessed as `dtc -O dts` guesses it.
"""

from __future__ import annotations

import json
import re
import sys
from array import array
from collections.abc import Iterator, Sequence
from itertools import pairwise
from typing import Any

from .dtb import paused_gc
from .errors import InputError
from .tree import Node, PieceKind, Property, RefKind, Tree

JSON_FORMAT = 1


def to_json(tree: Tree) -> dict[str, Any]:
    """The tree as the format-1 JSON object (see module docstring)."""
    nodes: dict[str, dict[str, str]] = {}
    # Paths built from the parent's, so deep trees stay linear.
    stack: list[tuple[Node, str]] = [(tree.root, "/")]
    while stack:
        node, path = stack.pop()
        nodes[path] = {p.name: p.value.hex() for p in node.prop_list()}
        prefix = path if path == "/" else path + "/"
        stack.extend((c, prefix + c.name) for c in reversed(node.child_nodes()))
    return {"format": JSON_FORMAT, "nodes": nodes}


def to_json_text(tree: Tree) -> str:
    """`to_json` serialised deterministically (key order is tree order), one node per
    line: readable and diff-friendly."""
    return "".join(json_chunks(tree))


def json_chunks(tree: Tree, lines_per_chunk: int = 1024) -> Iterator[str]:
    """The text of `to_json_text` in pieces, made as the tree is walked, so a big tree's
    JSON is never held whole (nor its dict). Names are nearly always plain (dtc allows
    only a few punctuation characters), so they are quoted directly; anything else
    goes through `json.dumps`. Hex values never need escaping."""
    q = _json_str
    lines: list[str] = []
    sep = ""
    yield f'{{"format": {JSON_FORMAT}, "nodes": {{\n'
    with paused_gc():
        stack: list[tuple[Node, str]] = [(tree.root, "/")]
        while stack:
            node, path = stack.pop()
            lines.append(f"{sep}  {q(path)}: {{"
                         + ", ".join(f'{q(p.name)}: "{p.value.hex()}"' for p in node.prop_list())
                         + "}")
            sep = ",\n"
            if len(lines) >= lines_per_chunk:
                yield "".join(lines)
                lines = []
            prefix = path if path == "/" else path + "/"
            stack.extend((c, prefix + c.name) for c in reversed(node.child_nodes()))
    lines.append("\n}}\n")
    yield "".join(lines)


_PLAIN = re.compile(r"[A-Za-z0-9,._+\-@#?*/ ]*")


def _json_str(s: str) -> str:
    return f'"{s}"' if _PLAIN.fullmatch(s) else json.dumps(s, ensure_ascii=True)


# --------------------------------------------------------------------------- DTS

_STRING_ESCAPES = {
    0x07: "\\a",
    0x08: "\\b",
    0x09: "\\t",
    0x0A: "\\n",
    0x0B: "\\v",
    0x0C: "\\f",
    0x0D: "\\r",
    0x22: '\\"',
    0x5C: "\\\\",
}
_DTC_STRING_CHARS = frozenset(range(0x20, 0x7F)) | frozenset(b"\0\a\b\t\n\v\f\r")


def _quote(raw: bytes) -> str:
    """A DTS string literal whose bytes (without the implied NUL) are `raw`."""
    out = ['"']
    for c in raw:
        esc = _STRING_ESCAPES.get(c)
        if esc is not None:
            out.append(esc)
        elif 0x20 <= c < 0x7F:
            out.append(chr(c))
        else:
            out.append(f"\\x{c:02x}")  # dtc reads at most two hex digits
    out.append('"')
    return "".join(out)


_UNSIGNED = {k: c for c in "BHILQ" for k in (array(c).itemsize,) if k in (1, 2, 4, 8)}
_HEX = "0x{:x}".format


def _cells(raw: bytes, size: int, notes: dict[int, str] | None = None) -> str:
    """`<...>` (with `/bits/` when not 32-bit); `notes` maps a byte offset in `raw`
    to a comment written after that cell (the `&label` a phandle came from)."""
    if not notes and size in _UNSIGNED and len(raw) > 4096:
        # a long run without notes: the numbers read at C speed, joined in chunks (no
        # list of 10^7 strings at once)
        arr = array(_UNSIGNED[size], raw)
        if sys.byteorder == "little":
            arr.byteswap()
        step = 1 << 16
        vals = " ".join(" ".join(map(_HEX, arr[k : k + step]))
                        for k in range(0, len(arr), step))
    else:
        items = []
        for i in range(0, len(raw), size):
            item = f"0x{int.from_bytes(raw[i : i + size], 'big'):x}"
            note = notes.get(i) if notes else None
            if note is not None:
                item += f" /* {note} */"
            items.append(item)
        vals = " ".join(items)
    prefix = "" if size == 4 else f"/bits/ {size * 8} "
    return f"{prefix}<{vals}>"


def _bytes(raw: bytes) -> str:
    return "[" + " ".join(f"{c:02x}" for c in raw) + "]"


def _strings(raw: bytes) -> str:
    return ", ".join(_quote(s) for s in raw[:-1].split(b"\0"))


def _guess(value: bytes) -> str:
    """The shape `dtc -O dts` picks: strings if they look like text, else cells
    when the length is a multiple of 4, else bytes."""
    n = len(value)
    nul = value.count(0)
    if value[-1] == 0 and all(c in _DTC_STRING_CHARS for c in value) and nul <= n - nul:
        return _strings(value)
    if n % 4 == 0:
        return _cells(value, 4)
    return _bytes(value)


def _from_pieces(prop: Property) -> str | None:
    """The value in its source shape, if the pieces cover it exactly; else None."""
    value = prop.value
    # offsets, sizes and kinds read from the packed pieces: a value of 10^7 cells makes
    # no Piece object per cell
    offs, sizes, kinds = prop.piece_fields()
    n_pieces = len(offs)
    order: Sequence[int] = range(n_pieces)
    if any(a > b for a, b in pairwise(offs)):  # (as built they are in order)
        order = sorted(order, key=offs.__getitem__)
    parts: list[str] = []
    pos = 0
    i = 0
    cell_kinds = (PieceKind.CELL, PieceKind.REF)
    while i < n_pieces:
        k = order[i]
        p_offset, p_size, p_kind = offs[k], sizes[k], kinds[k]
        if p_offset != pos or p_size <= 0 or pos + p_size > len(value):
            return None
        if p_kind in cell_kinds:
            if p_size not in (1, 2, 4, 8) or (p_kind is PieceKind.REF and p_size != 4):
                return None
            end = pos + p_size
            j = i + 1
            while j < n_pieces:
                q = order[j]
                if kinds[q] not in cell_kinds or sizes[q] != p_size or offs[q] != end:
                    break
                end += p_size
                j += 1
            if end > len(value):
                return None
            notes = {
                r.offset - pos: "&" + (f"{{{r.target}}}" if r.is_path_target else r.target)
                for r in prop.refs
                if r.kind is RefKind.PHANDLE and pos <= r.offset < end and "*/" not in r.target
            }
            parts.append(_cells(value[pos:end], p_size, notes))
            pos, i = end, j
            continue
        raw = value[pos : pos + p_size]
        if p_kind in (PieceKind.STRING, PieceKind.PATH):
            if raw[-1] != 0:
                return None
            parts.append(_quote(raw[:-1]))
        else:
            parts.append(_bytes(raw))
        pos += p_size
        i += 1
    if pos != len(value):
        return None
    return ", ".join(parts)


def _labels(labels: Sequence[str]) -> str:
    return "".join(f"{lab}: " for lab in labels)


def _prop_line(prop: Property) -> str:
    head = f"{_labels(prop.labels)}{prop.name}"
    if not prop.value:
        return head + ";"
    body = _from_pieces(prop) if len(prop.piece_fields()[0]) else None
    return f"{head} = {body if body is not None else _guess(prop.value)};"


def dtc_guessed_boot_cpuid(tree: Tree) -> int:
    """What dtc sets boot_cpuid_phys to when compiling DTS: the `reg` of the first
    child of /cpus when that is a single cell, else 0."""
    cpus = tree.root.children.get("cpus")
    if cpus is None or not cpus.children:
        return 0
    first = next(iter(cpus.children.values()))
    reg = first.get("reg")
    if reg is None or len(reg.value) != 4:
        return 0
    return int.from_bytes(reg.value, "big")


def to_dts(tree: Tree) -> str:
    """DTS source that dtc compiles to the same DTB as `write_dtb(tree)`.

    A boot_cpuid_phys other than the one dtc derives from /cpus cannot be said in
    DTS: a comment gives the `dtc -b` option instead. Names that dtc accepts in a
    DTB but that DTS cannot spell (an empty node or property name, a named root)
    raise InputError at their position rather than silently change the tree."""
    out: list[str] = ["/dts-v1/;"]
    if tree.plugin:
        out.append("/plugin/;")
    guess = dtc_guessed_boot_cpuid(tree)
    if tree.boot_cpuid_phys != guess:
        out.append(
            f"// boot_cpuid_phys is 0x{tree.boot_cpuid_phys:x}, which DTS cannot express: "
            f"compile with dtc -b 0x{tree.boot_cpuid_phys:x}"
        )
    out.append("")
    for mr in tree.memreserves:
        out.append(f"{_labels(mr.labels)}/memreserve/ 0x{mr.address:x} 0x{mr.size:x};")
    if tree.memreserves:
        out.append("")
    if tree.root.name:
        raise InputError(tree.root.span, "cannot write DTS: the root node has a name in the DTB")
    with paused_gc():
        _emit_nodes(tree.root, out)
    # DTS has no `label: / {`: a root label is attached through a reference,
    # one label per statement (dtc's grammar takes only one there).
    out.extend(f"{lab}: &{{/}} {{ }};" for lab in tree.root.labels)
    return "\n".join(out) + "\n"


def _emit_nodes(root: Node, out: list[str]) -> None:
    """Write a node and its subtree, without recursion."""
    stack: list[tuple[Node, int, bool]] = [(root, 0, True)]
    while stack:
        node, depth, opening = stack.pop()
        ind = "\t" * depth
        if not opening:
            out.append(f"{ind}}};")
            continue
        if node.parent is None:
            name = "/"
        elif not node.name:
            raise InputError(node.span, "cannot write DTS: a node with an empty name")
        else:
            name = node.name
        lab = _labels(node.label_names()) if node.parent is not None else ""
        out.append(f"{ind}{lab}{name} {{")
        for prop in node.prop_list():
            if not prop.name:
                raise InputError(prop.span, "cannot write DTS: a property with an empty name")
            out.append(f"{ind}\t{_prop_line(prop)}")
        stack.append((node, depth, False))
        stack.extend((c, depth + 1, True) for c in reversed(node.child_nodes()))
