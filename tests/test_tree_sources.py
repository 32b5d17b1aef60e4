"""Tree.sources (the files a tree was read from) and parses that share no state."""

from __future__ import annotations

import argparse
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType

import pytest

from evtchn_spec import grammar as grammar_pkg
from evtchn_spec.cli.common import command_inputs
from evtchn_spec.grammar import dts as dts_mod
from evtchn_spec.grammar.dtb import read_dtb, write_dtb
from evtchn_spec.grammar.dts import parse_dts
from evtchn_spec.grammar.errors import InputError
from evtchn_spec.grammar.tree import FileTable, Tree


def _files(tmp_path: Path) -> Path:
    (tmp_path / "inc").mkdir()
    (tmp_path / "inc" / "a.dtsi").write_text('/include/ "b.dtsi"\n/ { a = <1>; };\n')
    (tmp_path / "inc" / "b.dtsi").write_text("/ { b = <2>; };\n")
    (tmp_path / "blob.bin").write_bytes(b"\x01\x02")
    main = tmp_path / "main.dts"
    main.write_text('/dts-v1/;\n/include/ "inc/a.dtsi"\n'
                    '/ { c = /incbin/("blob.bin"); };\n/include/ "inc/b.dtsi"\n')
    return main


def test_sources_name_every_file_read_in_order(tmp_path: Path) -> None:
    main = _files(tmp_path)
    tree = parse_dts(main.read_bytes(), str(main))
    d = str(tmp_path)
    assert tree.sources == (str(main), f"{d}/inc/a.dtsi", f"{d}/inc/b.dtsi",
                            f"{d}/blob.bin")
    assert tree.source == str(main)


@pytest.mark.skipif(shutil.which("cpp") is None, reason="needs cpp")
def test_sources_with_cpp_name_the_included_files(tmp_path: Path) -> None:
    (tmp_path / "x.h").write_text("#define V 7\n")
    main = tmp_path / "m.dts"
    main.write_text('/dts-v1/;\n#include "x.h"\n/ { v = <V>; };\n')
    tree = parse_dts(main.read_bytes(), str(main), cpp=True)
    assert str(main) in tree.sources and str(tmp_path / "x.h") in tree.sources
    assert not {"<built-in>", "<command-line>"} & set(tree.sources)


def test_a_dtb_tree_names_its_file() -> None:
    tree = parse_dts(b"/dts-v1/;\n/ { a = <1>; };\n", "t.dts")
    assert tree.sources == ("t.dts",)
    assert read_dtb(write_dtb(tree), "t.dtb").sources == ("t.dtb",)


def test_command_inputs_come_from_the_tree(tmp_path: Path) -> None:
    main = _files(tmp_path)
    tree = parse_dts(main.read_bytes(), str(main))
    args = argparse.Namespace(file=str(main), trace=None, policy=None, uboot_base=None)
    assert command_inputs(args) == [str(main)]
    assert command_inputs(args, tree) == [str(main), *tree.sources]


def test_parses_keep_no_module_state(tmp_path: Path) -> None:
    """Nothing of one parse is left in the module, and parses in threads at once give
    exactly what they give one after the other (no lock: each parse has its own
    context)."""
    main = _files(tmp_path)
    texts = [main.read_bytes()] + [
        f"/dts-v1/;\n/ {{ n{i} {{ x = <{i}>, \"s{i}\"; y = [0{i % 10}]; }}; }};\n".encode()
        for i in range(12)
    ] + [b"/dts-v1/;\n/ { a = <(1 / 0)>; };\n", b"/dts-v1/;\n/ { a = <1> };\n"]
    names = [str(main)] + [f"t{i}.dts" for i in range(len(texts) - 1)]

    def run(k: int) -> tuple[bytes, tuple[str, ...]] | str:
        try:
            tree = parse_dts(texts[k], names[k])
        except InputError as exc:
            return str(exc)
        return write_dtb(tree), tree.sources

    alone = [run(k) for k in range(len(texts))]
    assert "Division by zero" in str(alone[-2]) and "syntax error" in str(alone[-1])
    with ThreadPoolExecutor(4) as pool:
        for _ in range(3):
            assert list(pool.map(run, list(range(len(texts))) * 2)) == alone * 2
    assert not any(k in vars(dts_mod) for k in ("_CTX", "_LOCK"))


def _module_containers() -> dict[tuple[str, str], int]:
    """The size of every list, dict and set a module of the front end holds."""
    return {(mod.__name__, name): len(v) for mod in vars(grammar_pkg).values()
            if isinstance(mod, ModuleType)
            for name, v in vars(mod).items() if isinstance(v, (list, dict, set))}


def _tables(tree: Tree) -> list[FileTable]:
    """The file table of each property of the root (each one is packed and folded)."""
    props = tree.root.prop_list()
    tables = [p._span for p in props if isinstance(p._span, FileTable)]
    assert len(tables) == len(props)
    return tables


def test_no_parse_state_outlives_its_tree(tmp_path: Path) -> None:
    """The file names packed pieces point at belong to the parse: a second parse of
    other files numbers its own, and no module of the front end keeps a growing table."""
    before = _module_containers()
    one = parse_dts(b"/dts-v1/;\n/ { a = <1>; b = <2 3>; };\n", str(tmp_path / "one.dts"))
    two = parse_dts(b"/dts-v1/;\n/ { a = <1>; };\n", str(tmp_path / "two.dts"))
    for tree, name in ((one, "one.dts"), (two, "two.dts")):
        tables = _tables(tree)
        assert len({id(tb) for tb in tables}) == 1  # one table for the whole parse
        assert list(tables[0]) == [str(tmp_path / name)]
    assert _tables(one)[0] is not _tables(two)[0]
    assert _module_containers() == before
