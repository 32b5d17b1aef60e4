"""The resolved device tree that both front ends (DTS text, DTB bytes) produce.

It is the single hand-off point to the rest of the project: the config model
reads nothing else. A resolved tree has every `/include/`, override, deletion and
reference already applied, phandles assigned exactly as dtc assigns them, and a
`Span` on every node, property, label and reference so that any finding can
point back at the user's source.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum

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


@dataclass(slots=True, eq=False)
class Property:
    name: str
    value: bytes
    span: Span  # the assignment that gave the final value
    labels: list[str] = field(default_factory=list)
    refs: list[Ref] = field(default_factory=list)
    pieces: list[Piece] = field(default_factory=list)

    def cells(self) -> list[int]:
        """The value read as big-endian 32-bit cells (trailing odd bytes dropped)."""
        v = self.value
        return [int.from_bytes(v[i : i + 4], "big") for i in range(0, len(v) - len(v) % 4, 4)]

    def piece_at(self, offset: int) -> Piece | None:
        """The literal element that wrote the byte at `offset`, if the source had one."""
        for p in self.pieces:
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


@dataclass(slots=True, eq=False)
class Node:
    name: str  # full node name with unit address, "" for the root
    span: Span  # first definition
    parent: Node | None = None
    properties: dict[str, Property] = field(default_factory=dict)
    children: dict[str, Node] = field(default_factory=dict)
    labels: list[str] = field(default_factory=list)
    phandle: int | None = None  # final value of `phandle`/`linux,phandle`, if any
    other_spans: list[Span] = field(default_factory=list)  # later re-definitions

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

    @property
    def unit_address(self) -> str | None:
        return self.name.split("@", 1)[1] if "@" in self.name else None

    def get(self, name: str) -> Property | None:
        return self.properties.get(name)

    def compatible(self) -> list[str]:
        prop = self.properties.get("compatible")
        if prop is None:
            return []
        return prop.strings() or []

    def walk(self) -> Iterator[Node]:
        """This node and every descendant, in tree (pre-)order, without recursion."""
        stack: list[Node] = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children.values()))


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
