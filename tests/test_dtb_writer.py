"""The DTB writer produces exactly dtc 1.6.1's bytes, checked live against dtc.

Also home of the random-tree strategy and the dtc runner the other DTB/dump tests use.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evtchn_spec.grammar.dtb import read_dtb, write_dtb
from evtchn_spec.grammar.dump import to_json
from evtchn_spec.grammar.errors import Span
from evtchn_spec.grammar.tree import MemReserve, Node, Piece, PieceKind, Property, Tree

DTC = shutil.which("dtc")
# dtc is the reference: without it these tests must fail loudly, not skip.
assert DTC is not None, "dtc (device-tree-compiler 1.6.1) must be installed: run ./install.sh"

DTC_EXAMPLES = int(os.environ.get("EVTCHN_SPEC_DTC_EXAMPLES", "60"))
SPAN = Span("gen", 1, 1)

NODE_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789,._+-"
PROP_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789,._+-*#?"


def dtc(args: list[str], data: bytes) -> subprocess.CompletedProcess[bytes]:
    """Run dtc on `data` given on its standard input."""
    assert DTC is not None
    return subprocess.run([DTC, "-q", *args, "-"], input=data, capture_output=True, check=False)


def dtc_dtb_to_dtb(data: bytes) -> bytes:
    res = dtc(["-I", "dtb", "-O", "dtb"], data)
    assert res.returncode == 0, res.stderr.decode(errors="replace")
    return res.stdout


# ----------------------------------------------------------------- random trees

node_names = st.builds(
    lambda base, unit: base + (f"@{unit}" if unit else ""),
    st.text(NODE_CHARS, min_size=1, max_size=12),
    st.one_of(st.none(), st.text("0123456789abcdef,", min_size=1, max_size=8)),
)
prop_names = st.text(PROP_CHARS, min_size=1, max_size=20).filter(
    lambda n: n not in ("name", "phandle", "linux,phandle")
)


@st.composite
def values(draw: st.DrawFn) -> tuple[bytes, list[Piece]]:
    """A property value built from source-like elements, with their pieces."""
    value = b""
    pieces: list[Piece] = []
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["cells", "string", "bytes"]))
        if kind == "cells":
            size = draw(st.sampled_from([1, 2, 4, 4, 8]))
            for n in draw(st.lists(st.integers(0, 2 ** (8 * size) - 1), min_size=1, max_size=4)):
                pieces.append(Piece(len(value), size, PieceKind.CELL, SPAN))
                value += n.to_bytes(size, "big")
        elif kind == "string":
            raw = draw(st.binary(max_size=12)).replace(b"\0", b"") + b"\0"
            pieces.append(Piece(len(value), len(raw), PieceKind.STRING, SPAN))
            value += raw
        else:
            raw = draw(st.binary(min_size=1, max_size=9))
            pieces.append(Piece(len(value), len(raw), PieceKind.BYTES, SPAN))
            value += raw
    if draw(st.booleans()):
        pieces = []  # as a DTB reader leaves it: the shape must be guessed
    return value, pieces


@st.composite
def trees(draw: st.DrawFn, max_nodes: int = 12) -> Tree:
    root = Node("", SPAN)
    nodes = [root]
    for _ in range(draw(st.integers(0, max_nodes))):
        parent = draw(st.sampled_from(nodes))
        name = draw(node_names)
        if name in parent.children:
            continue
        child = Node(name, SPAN, parent=parent)
        parent.children[name] = child
        nodes.append(child)
    next_phandle = draw(st.integers(1, 1000))
    for node in nodes:
        for pname in draw(st.lists(prop_names, max_size=5, unique=True)):
            value, pieces = draw(values())
            node.properties[pname] = Property(pname, value, SPAN, pieces=pieces)
        if draw(st.integers(0, 3)) == 0:
            node.properties["phandle"] = Property(
                "phandle", next_phandle.to_bytes(4, "big"), SPAN)
            node.phandle = next_phandle
            next_phandle += draw(st.integers(1, 5))
    tree = Tree(root, "gen")
    for _ in range(draw(st.integers(0, 3))):
        tree.memreserves.append(MemReserve(
            draw(st.integers(0, 2**64 - 1)), draw(st.integers(1, 2**64 - 1)), SPAN))
    tree.boot_cpuid_phys = draw(st.integers(0, 2**32 - 1))
    return tree


# ----------------------------------------------------------------- properties

@settings(max_examples=300, deadline=None)
@given(trees())
def test_write_read_write_is_a_fixed_point(tree: Tree) -> None:
    blob = write_dtb(tree)
    again = read_dtb(blob, "gen.dtb")
    assert write_dtb(again) == blob
    assert to_json(again) == to_json(tree)
    assert again.memreserves == [
        MemReserve(m.address, m.size, again.memreserves[i].span)
        for i, m in enumerate(tree.memreserves)]
    assert again.boot_cpuid_phys == tree.boot_cpuid_phys
    assert {p: n.path for p, n in again.phandles.items()} == {
        n.phandle: n.path for n in tree.walk() if n.phandle is not None}


@settings(max_examples=DTC_EXAMPLES, deadline=None)
@given(trees())
def test_written_blob_is_what_dtc_writes_for_it(tree: Tree) -> None:
    blob = write_dtb(tree)
    assert dtc_dtb_to_dtb(blob) == blob


# ----------------------------------------------------------------- fixed sources

SAMPLE_DTS = b"""/dts-v1/;
/memreserve/ 0x10000000 0x4000;
/memreserve/ 0xffffffff00000000 0x1000;
/ {
    #address-cells = <2>;
    #size-cells = <2>;
    model = "board";
    compatible = "vendor,board", "vendor,soc";
    cpus {
        #address-cells = <1>;
        #size-cells = <0>;
        cpu@101 { device_type = "cpu"; reg = <0x101>; };
        cpu@0 { device_type = "cpu"; reg = <0>; };
    };
    intc: interrupt-controller@8000000 {
        reg = <0 0x8000000 0 0x10000>;
        interrupt-controller;
        #interrupt-cells = <3>;
    };
    chosen {
        size-cells = "no suffix sharing for this one";
        cells = /bits/ 8 <1 2 3>;
        wide = /bits/ 64 <0x123456789>;
        interrupt-parent = <&intc>;
        path = &intc;
        bytes = [de ad be ef 01];
        mixed = "a", <1>, [02], "b";
    };
};
"""


def test_dts_compiled_by_dtc_reads_and_writes_back_identically() -> None:
    res = dtc(["-I", "dts", "-O", "dtb"], SAMPLE_DTS)
    assert res.returncode == 0, res.stderr
    blob = res.stdout
    tree = read_dtb(blob, "sample.dtb")
    assert write_dtb(tree) == blob
    # dtc guessed boot_cpuid_phys from the first /cpus child, and we read it back.
    assert tree.boot_cpuid_phys == 0x101
    assert [(m.address, m.size) for m in tree.memreserves] == [
        (0x10000000, 0x4000), (0xFFFFFFFF00000000, 0x1000)]
    intc = tree.find("/interrupt-controller@8000000")
    assert intc is not None and intc.phandle == 1 and tree.by_phandle(1) is intc


def test_strings_block_reuses_suffixes_like_dtc() -> None:
    """dtc stores "cells" inside "#size-cells": the offset points into the middle."""
    blob = dtc(["-I", "dts", "-O", "dtb"], SAMPLE_DTS).stdout
    off_strings, = struct.unpack_from(">I", blob, 12)
    size_strings, = struct.unpack_from(">I", blob, 32)
    table = blob[off_strings:off_strings + size_strings]
    assert b"\0cells\0" not in table  # shared, not stored twice
    root = Node("", SPAN)
    for name in ("#size-cells", "cells", "size-cells", "ells", "x"):
        root.properties[name] = Property(name, b"", SPAN)
    ours = write_dtb(Tree(root, "t"))
    o, = struct.unpack_from(">I", ours, 12)
    assert ours[o:] == b"#size-cells\0x\0"


def test_header_layout() -> None:
    root = Node("", SPAN)
    tree = Tree(root, "t", memreserves=[MemReserve(1, 2, SPAN)], boot_cpuid_phys=7)
    blob = write_dtb(tree)
    fields = struct.unpack_from(">10I", blob, 0)
    magic, total, off_struct, off_strings, off_rsv, version, last_comp, cpu, ssz, dsz = fields
    assert (magic, version, last_comp, cpu) == (0xD00DFEED, 17, 16, 7)
    assert off_rsv == 40 and off_struct == 40 + 2 * 16
    assert dsz == 16 and off_strings == off_struct + dsz and ssz == 0 and total == len(blob)
    assert blob[off_struct:off_strings] == bytes.fromhex("00000001 00000000 00000002 00000009")


@pytest.mark.parametrize("version", [1, 2, 3, 16, 17])
def test_reads_every_version_dtc_writes(version: int) -> None:
    old = dtc(["-I", "dts", "-O", "dtb", "-V", str(version)], SAMPLE_DTS)
    assert old.returncode == 0, old.stderr
    tree = read_dtb(old.stdout, "old.dtb")
    assert tree.dtb_version == version
    assert write_dtb(tree) == dtc_dtb_to_dtb(old.stdout)
