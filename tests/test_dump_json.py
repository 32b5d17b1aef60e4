"""`dump --format json`: the format-1 contract, checked against the tree and fdtget."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from test_dtb_writer import SAMPLE_DTS, dtc, trees

from evtchn_spec.grammar.dtb import read_dtb, write_dtb
from evtchn_spec.grammar.dump import json_chunks, to_json, to_json_text
from evtchn_spec.grammar.tree import Tree

FDTGET = shutil.which("fdtget")
assert FDTGET is not None, "fdtget (device-tree-compiler) must be installed: run ./install.sh"
CORPUS = Path(__file__).parent / "data" / "corpus"


@settings(max_examples=200, deadline=None)
@given(trees())
def test_json_lists_every_node_and_property_in_tree_order(tree: Tree) -> None:
    doc = to_json(tree)
    assert list(doc) == ["format", "nodes"] and doc["format"] == 1
    nodes = doc["nodes"]
    assert list(nodes) == [n.path for n in tree.walk()]
    for node in tree.walk():
        props = nodes[node.path]
        assert list(props) == list(node.properties)
        for name, hexval in props.items():
            assert re.fullmatch(r"(?:[0-9a-f]{2})*", hexval)
            assert bytes.fromhex(hexval) == node.properties[name].value
    # The text form is that object, deterministic, and the same from the DTB.
    assert json.loads(to_json_text(tree)) == doc
    assert to_json_text(tree) == to_json_text(read_dtb(write_dtb(tree), "x.dtb"))


@settings(max_examples=100, deadline=None)
@given(trees(), st.integers(min_value=1, max_value=5))
def test_streamed_json_is_the_document_whatever_the_chunking(tree: Tree, per_chunk: int
                                                              ) -> None:
    """`dump` writes the JSON in chunks as it walks the tree (never the whole text or
    dict at once): any chunking gives the same text, and that text is `to_json`."""
    text = "".join(json_chunks(tree, per_chunk))
    assert text == to_json_text(tree)
    assert json.loads(text) == to_json(tree)


def test_empty_property_is_the_empty_string() -> None:
    blob = dtc(["-I", "dts", "-O", "dtb"], b"/dts-v1/; / { flag; n = <0xAB>; };").stdout
    nodes = to_json(read_dtb(blob, "e.dtb"))["nodes"]
    assert nodes == {"/": {"flag": "", "n": "000000ab"}}


def _fdtget(*args: str) -> str:
    assert FDTGET is not None
    res = subprocess.run([FDTGET, *args], capture_output=True, text=True, check=True)
    return res.stdout


def test_json_agrees_with_fdtget_on_a_xen_tree(tmp_path: Path) -> None:
    """libfdt (through fdtget) is an independent reader of the same blob."""
    src = (CORPUS / "xen-docs" / "booting-static-evtchn.dts").read_bytes()
    for source in (src, SAMPLE_DTS):
        blob = dtc(["-I", "dts", "-O", "dtb"], source).stdout
        path = tmp_path / "x.dtb"
        path.write_bytes(blob)
        nodes = to_json(read_dtb(blob, "x.dtb"))["nodes"]
        for npath, props in nodes.items():
            assert _fdtget("-p", str(path), npath).split() == list(props)
            kids = _fdtget("-l", str(path), npath).split()
            prefix = npath.rstrip("/") + "/"
            assert [prefix + k for k in kids] == [
                p for p in nodes
                if p != npath and p.startswith(prefix) and "/" not in p[len(prefix):]]
            for name, hexval in props.items():
                if not hexval:
                    continue
                got = _fdtget("-t", "bx", str(path), npath, name).split()
                assert bytes(int(x, 16) for x in got).hex() == hexval
