"""A minimal flattened-device-tree reader and writer for building QEMU's boot DTB.

Why our own: the conformance runner must splice the user's /chosen into the
tree QEMU dumps for its `virt` machine, byte for byte, without going through
DTS text (where quoting and phandle labels would get in the way).  This keeps
only what a DTB holds: node names, properties as raw bytes, and the memory
reservation map.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

FDT_MAGIC = 0xD00DFEED
FDT_BEGIN_NODE = 1
FDT_END_NODE = 2
FDT_PROP = 3
FDT_NOP = 4
FDT_END = 9


class FdtError(ValueError):
    """The bytes are not a well-formed flattened device tree."""


@dataclass(slots=True)
class FdtNode:
    """One node: its name (with unit address), properties in order, children in order."""

    name: str
    props: list[tuple[str, bytes]] = field(default_factory=list)
    children: list[FdtNode] = field(default_factory=list)

    def prop(self, name: str) -> bytes | None:
        for key, value in self.props:
            if key == name:
                return value
        return None

    def set_prop(self, name: str, value: bytes) -> None:
        for i, (key, _) in enumerate(self.props):
            if key == name:
                self.props[i] = (name, value)
                return
        self.props.append((name, value))

    def child(self, name: str) -> FdtNode | None:
        for c in self.children:
            if c.name == name:
                return c
        return None

    def strings(self, name: str) -> list[str]:
        """A string-list property (e.g. compatible) decoded; [] when absent."""
        value = self.prop(name)
        if not value:
            return []
        return [s.decode("latin-1") for s in value.rstrip(b"\0").split(b"\0")]

    def u32(self, name: str) -> int | None:
        value = self.prop(name)
        if value is None or len(value) != 4:
            return None
        return int.from_bytes(value, "big")

    def walk(self, path: str = "") -> list[tuple[str, FdtNode]]:
        """(path, node) for this node and every descendant, in tree order."""
        here = path if path else "/"
        out = [(here, self)]
        for c in self.children:
            out.extend(c.walk((path if path else "") + "/" + c.name))
        return out


@dataclass(slots=True)
class Fdt:
    root: FdtNode
    reserved: list[tuple[int, int]] = field(default_factory=list)
    boot_cpuid: int = 0


def _cstr(data: bytes, off: int) -> tuple[str, int]:
    end = data.find(b"\0", off)
    if end < 0:
        raise FdtError("unterminated string")
    return data[off:end].decode("latin-1"), end + 1


def parse(data: bytes) -> Fdt:
    """Parse a DTB (version 16/17)."""
    if len(data) < 40:
        raise FdtError("too short for an FDT header")
    (magic, total, off_struct, off_strings, off_rsv, version, _last, cpuid,
     size_strings) = struct.unpack_from(">9I", data, 0)
    if magic != FDT_MAGIC:
        raise FdtError("bad magic (not a DTB)")
    if total > len(data) or version < 16:
        raise FdtError("truncated or unsupported DTB")
    size_struct = struct.unpack_from(">I", data, 36)[0] if version >= 17 else total - off_struct
    strings = data[off_strings:off_strings + size_strings]
    reserved: list[tuple[int, int]] = []
    off = off_rsv
    while True:
        addr, size = struct.unpack_from(">QQ", data, off)
        off += 16
        if addr == 0 and size == 0:
            break
        reserved.append((addr, size))
    stack: list[FdtNode] = []
    root: FdtNode | None = None
    off = off_struct
    end = off_struct + size_struct
    while off < end:
        (token,) = struct.unpack_from(">I", data, off)
        off += 4
        if token == FDT_BEGIN_NODE:
            name, off = _cstr(data, off)
            off = (off + 3) & ~3
            node = FdtNode(name)
            if stack:
                stack[-1].children.append(node)
            elif root is None:
                root = node
            else:
                raise FdtError("more than one root node")
            stack.append(node)
        elif token == FDT_END_NODE:
            if not stack:
                raise FdtError("unbalanced END_NODE")
            stack.pop()
        elif token == FDT_PROP:
            if not stack:
                raise FdtError("property outside a node")
            length, nameoff = struct.unpack_from(">II", data, off)
            off += 8
            pname, _ = _cstr(strings, nameoff)
            stack[-1].props.append((pname, bytes(data[off:off + length])))
            off = (off + length + 3) & ~3
        elif token == FDT_NOP:
            continue
        elif token == FDT_END:
            break
        else:
            raise FdtError(f"unknown token {token:#x}")
    if root is None or stack:
        raise FdtError("no complete root node")
    return Fdt(root, reserved, cpuid)


def serialize(fdt: Fdt) -> bytes:
    """Write a version-17 DTB; property names are de-duplicated in the strings block."""
    strings = bytearray()
    offsets: dict[str, int] = {}
    body = bytearray()

    def name_off(name: str) -> int:
        if name not in offsets:
            offsets[name] = len(strings)
            strings.extend(name.encode("latin-1") + b"\0")
        return offsets[name]

    def emit(node: FdtNode) -> None:
        body.extend(struct.pack(">I", FDT_BEGIN_NODE))
        raw = node.name.encode("latin-1") + b"\0"
        body.extend(raw + b"\0" * ((-len(raw)) % 4))
        for pname, value in node.props:
            body.extend(struct.pack(">III", FDT_PROP, len(value), name_off(pname)))
            body.extend(value + b"\0" * ((-len(value)) % 4))
        for c in node.children:
            emit(c)
        body.extend(struct.pack(">I", FDT_END_NODE))

    emit(fdt.root)
    body.extend(struct.pack(">I", FDT_END))
    rsv = bytearray()
    for addr, size in fdt.reserved:
        rsv.extend(struct.pack(">QQ", addr, size))
    rsv.extend(struct.pack(">QQ", 0, 0))
    off_rsv = 40
    off_struct = off_rsv + len(rsv)
    off_strings = off_struct + len(body)
    total = off_strings + len(strings)
    header = struct.pack(">10I", FDT_MAGIC, total, off_struct, off_strings, off_rsv, 17, 16,
                         fdt.boot_cpuid, len(strings), len(body))
    return bytes(header + rsv + body + strings)


def u32s(*values: int) -> bytes:
    return b"".join(struct.pack(">I", v & 0xFFFFFFFF) for v in values)


def cells(value: int, n: int) -> bytes:
    """VALUE as N big-endian 32-bit cells."""
    return b"".join(struct.pack(">I", (value >> (32 * (n - 1 - i))) & 0xFFFFFFFF)
                    for i in range(n))


def string(value: str) -> bytes:
    return value.encode("latin-1") + b"\0"


def string_list(*values: str) -> bytes:
    return b"".join(string(v) for v in values)
