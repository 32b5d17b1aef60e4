"""U-Boot boot scripts as input (grammar/uboot.py).

The value parser and the shell's `${var}` expansion are checked against models
written from U-Boot's rules (cmd/fdt.c fdt_parse_prop, lib/strto.c simple_strtoul,
common/cli_hush.c); the tree edits against libfdt itself (fdtput, from the same
device-tree-compiler package as dtc, replays the scripts' fdt commands) and against
the same nodes written in DTS; the findings against the script lines.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evtchn_spec.grammar import load
from evtchn_spec.grammar.dtb import read_dtb, write_dtb
from evtchn_spec.grammar.errors import InputError
from evtchn_spec.grammar.tree import Node, Tree
from evtchn_spec.grammar.uboot import (
    PropValueError,
    iter_commands,
    load_uboot,
    parse_prop,
    run_script,
    script_text,
)
from evtchn_spec.refimpl.check import check
from evtchn_spec.refimpl.config import Config, xen_profile

DATA = Path(__file__).parent / "data" / "uboot"
QEMU = DATA / "qemu-virt-smp2.dtb"
ZCU = DATA / "zcu102-xen.dtb"
GENERATED = [("paired", QEMU), ("one-sided", QEMU), ("zcu102-three", ZCU)]
SCRIPTS = [*GENERATED, ("static-evtchns-v2", QEMU)]


def base() -> Tree:
    return read_dtb(QEMU.read_bytes(), str(QEMU))


def run(text: str, tree: Tree | None = None) -> Tree:
    return run_script(text, "s.cmd", tree if tree is not None else base())


def chosen_prop(text: str, name: str = "p") -> bytes:
    node = run("fdt addr 0x40000000\n" + text).find("/chosen")
    assert node is not None
    prop = node.get(name)
    assert prop is not None
    return prop.value


# ------------------------------------------------------------------ the value parser

def render_number(value: int, style: int) -> str:
    """A number written the ways a C programmer writes it for base 0."""
    if style == 0 or value == 0:
        return str(value)
    if style == 1:
        return f"0x{value:x}"
    if style == 2:
        return f"0X{value:X}"
    return f"0{value:o}"


cells_st = st.lists(st.tuples(st.integers(0, 2**64 - 1), st.integers(0, 3)), max_size=8)


@settings(max_examples=200, deadline=None)
@given(cells_st, st.lists(st.integers(1, 3), min_size=9, max_size=9), st.booleans())
def test_cells_are_base0_numbers_cut_to_32_bits(cells: list[tuple[int, int]],
                                                 gaps: list[int], split: bool) -> None:
    # model: each number as C reads it, truncated to a big-endian cell; spaces between
    # them any number; the words may be one argument or split at every space
    spaced = zip(cells, gaps[:len(cells)], strict=True)
    text = "<" + "".join(render_number(v, s) + " " * g for (v, s), g in spaced) + ">"
    args = [w for w in text.split(" ") if w] if split else [text]
    want = b"".join((v & 0xFFFFFFFF).to_bytes(4, "big") for v, _ in cells)
    assert parse_prop(args, b"") == want


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 2**32 - 1)), max_size=6),
       st.binary(max_size=32))
def test_question_mark_keeps_the_old_cell(cells: list[tuple[bool, int]], old: bytes) -> None:
    text = "<" + " ".join("?" if keep else str(v) for keep, v in cells) + ">"
    padded = old + bytes(1024)
    want = b"".join(padded[4 * i:4 * i + 4] if keep else v.to_bytes(4, "big")
                    for i, (keep, v) in enumerate(cells))
    assert parse_prop([text], old) == want


def test_cells_quirks_of_simple_strtoul() -> None:
    # a leading 0 means octal, and the 8 it cannot read starts the next cell;
    # "0x" without digits is 0 and consumed (lib/strto.c since 2021)
    assert parse_prop(["<08>"], b"") == b"\0\0\0\0\0\0\0\x08"
    assert parse_prop(["<0x>"], b"") == b"\0\0\0\0"
    assert parse_prop(["<1>", "<2>"], b"") == b"\0\0\0\x01"  # after '>' nothing counts
    assert parse_prop(["<1>junk"], b"") == b"\0\0\0\x01"
    assert parse_prop(["<>"], b"") == b""


hexrun_st = st.text(alphabet="0123456789abcdefABCDEF", min_size=1, max_size=12)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(hexrun_st, st.booleans()), max_size=10), st.booleans())
def test_bytes_are_hex_runs_cut_to_8_bits(runs: list[tuple[str, bool]], split: bool) -> None:
    text = "[" + " ".join(("0x" if px else "") + r for r, px in runs) + "]"
    args = [w for w in text.split(" ") if w] if split else [text]
    # model: hextoul reads the whole run (0x prefix skipped), the byte is its low 8 bits
    want = bytes(int(r, 16) & 0xFF for r, _ in runs)
    assert parse_prop(args, b"") == want


word_st = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=12)


@settings(max_examples=200, deadline=None)
@given(st.lists(word_st, min_size=1, max_size=6))
def test_other_words_are_a_string_list(words: list[str]) -> None:
    if words[0][:1] in ("<", "["):
        words[0] = "s" + words[0]
    assert parse_prop(words, b"") == b"".join(w.encode() + b"\0" for w in words)


@pytest.mark.parametrize(("args", "message"), [
    (["<1", "x>"], 'Sorry, I could not convert "x>"'),
    (["<1 2"], "no closing '>'"),
    (["[00", "zz]"], "Unexpected character 'z'"),
    (["[00"], "no closing ']'"),
    (["<" + "1 " * 257 + ">"], "overflows U-Boot's 1024-byte scratchpad"),
])
def test_values_u_boot_rejects(args: list[str], message: str) -> None:
    with pytest.raises(PropValueError, match=re.escape(message)):
        parse_prop(args, b"")


# ------------------------------------------------------------------ the shell

value_st = st.text(alphabet="abcXYZ019,.;$&|<>[]{}=/- \t", max_size=12)


@settings(max_examples=150, deadline=None)
@given(st.lists(value_st, min_size=1, max_size=3), st.booleans(), st.booleans())
def test_variables_expand_as_hush_reparses_them(values: list[str], quoted: bool,
                                                  braces: bool) -> None:
    # model (cli_hush.c run_pipe_real + make_string): a quoted word stays one word;
    # an unquoted value is split again at blanks; `; $ & |` in a value are ordinary
    script = "".join(f"setenv v{i} '{v}'\n" for i, v in enumerate(values))
    refs = "".join(f"${{v{i}}}" if braces else f"$v{i}" for i in range(len(values)))
    script += f'fdt set /chosen p s "{refs}"\n' if quoted else f"fdt set /chosen p s {refs}\n"
    joined = "".join(values)
    words = ["s", joined] if quoted else ["s", *joined.split()]
    want = b"".join(w.encode() + b"\0" for w in words)
    assert chosen_prop(script) == want


def test_hush_details() -> None:
    # a quoted `#` and `\#` are no comment; single quotes keep blanks and `$`
    assert chosen_prop("fdt set /chosen \\#p <1>\n", "#p") == b"\0\0\0\x01"
    assert chosen_prop("fdt set /chosen p 'a $b  c' # comment\n") == b"a $b  c\0"
    # variables are read when the command runs, not when its line is parsed
    assert chosen_prop("setenv a 7; fdt set /chosen p <$a>\n") == b"\0\0\0\x07"
    # hush's own variables, and ${x:-default}
    assert chosen_prop("n=3\nfdt set /chosen p <$n ${m:-4}>\n") == b"\0\0\0\x03\0\0\0\x04"
    # `;` in a value does not separate commands
    assert chosen_prop("setenv s 'x;fdt rm /chosen'\nfdt set /chosen p $s\n") == \
        b"x;fdt\0rm\0/chosen\0"
    # run executes a variable's text; || skips the other side (loads always succeed)
    assert chosen_prop("setenv c 'fdt set /chosen p <5>'\nrun c\n") == b"\0\0\0\x05"
    # an assignment before a command is set first (hush's set_local_var), also in run
    assert chosen_prop("setenv c 'x=6 fdt set /chosen p <$x>'\nrun c\n") == b"\0\0\0\x06"
    assert chosen_prop("fdt set /chosen p <1> || fdt set /chosen p <2>\n") == b"\0\0\0\x01"
    assert chosen_prop("fdt set /chosen p <1> && fdt set /chosen p <2>\n") == b"\0\0\0\x02"
    # old hush skips the whole rest of the chain after a successful `||`
    assert chosen_prop("fdt set /chosen p <1> || fdt set /chosen p <2> && "
                       "fdt set /chosen p <3>; fdt set /chosen q <4>\n") == b"\0\0\0\x01"
    assert chosen_prop("fdt set /chosen p <1> || fdt set /chosen p <2>; "
                       "fdt set /chosen q <4>\n", "q") == b"\0\0\0\x04"


def test_commands_after_a_boot_do_not_run() -> None:
    tree = run("fdt addr 1\nbooti 0x1 - 0x1\nfdt set /chosen p <1>\n")
    chosen = tree.find("/chosen")
    assert chosen is not None and chosen.get("p") is None


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize(("script", "where", "message"), [
    ("fdt set /chosen p <1>\n", "1:1", "No FDT memory address configured"),
    ("fdt addr 1\nfdt set /nope p <1>\n", "2:1",
     "libfdt fdt_path_offset() returned FDT_ERR_NOTFOUND"),
    ("fdt addr 1\n  fdt mknod / chosen\n", "2:3", "libfdt fdt_add_subnode(): FDT_ERR_EXISTS"),
    ("fdt addr 1; fdt set /chosen p <1 zz>\n", "1:13", 'Sorry, I could not convert "zz>"'),
    ("fdt addr 1\nfdt set /chosen p [00 zz]\n", "2:1", "Unexpected character 'z'"),
    ("fdt addr 1\nfdt rm /chosen nothing\n", "2:1", "libfdt fdt_delprop(): FDT_ERR_NOTFOUND"),
    ("fdt addr 1\nsetexpr a 1 + 2\n", "2:1", "command 'setexpr' is not modelled"),
    ("fdt addr 1\nfdt apply 0x100\n", "2:1", "fdt apply is not modelled"),
    ("fdt addr 1\nfdt addr 2\n", "2:1", "a second device tree is not modelled"),
    ("echo 'open\n", "1:6", "syntax error"),
    ("echo a | echo b\n", "1:8", "syntax error"),
    ("if true; then echo; fi\n", "1:1", "hush keyword 'if' is not modelled"),
    ("fdt addr 1\nload mmc 0:1 0x100 f\nfdt set /chosen reg <0x${filesize}>\n", "3:1",
     "${filesize} is set by 'load' at s.cmd:2:1"),
    ("fdt addr 1\nfdt set /chosen p q\nfdt set /chosen/p x <1>\n", "3:1",
     "FDT_ERR_NOTFOUND"),
    ("fdt addr 1\nfdt mknod /chosen a\nfdt set /chosen/a phandle <0x8001>\n", "3:1",
     "duplicated phandle 0x8001 in /chosen/a"),
    # a new node of the root's goes first, before the base node with that phandle:
    # the error still points at the script
    ("fdt addr 1\nfdt mknod / aaa\nfdt set /aaa phandle <0x8001>\n", "3:1",
     "duplicated phandle 0x8001 in /aaa"),
])
def test_script_errors_are_one_line_at_the_command(script: str, where: str,
                                                   message: str) -> None:
    with pytest.raises(InputError) as info:
        run(script)
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith(f"s.cmd:{where}: "), text
    assert message in text


def test_libfdt_name_matching() -> None:
    # a name without a unit address finds the first node of that base name (for
    # fdt set) and clashes with it (for fdt mknod)
    tree = run("fdt addr 1\nfdt mknod /chosen evtchn@1\nfdt set /chosen/evtchn p <1>\n")
    node = tree.find("/chosen/evtchn@1")
    assert node is not None and node.get("p") is not None
    with pytest.raises(InputError, match="FDT_ERR_EXISTS"):
        run("fdt addr 1\nfdt mknod /chosen evtchn@1\nfdt mknod /chosen evtchn\n")


def test_alias_paths() -> None:
    zcu = load(ZCU)
    aliases = zcu.find("/aliases")
    assert aliases is not None
    target = aliases.get("serial0")
    assert target is not None
    path = target.value.rstrip(b"\0").decode()
    tree = run_script("fdt addr 1\nfdt set serial0 p <9>\n", "s.cmd", zcu)
    node = tree.find(path)
    assert node is not None and node.get("p") is not None


# ------------------------------------------------------------------ legacy images


@pytest.mark.parametrize(("name", "_base"), GENERATED)
def test_mkimage_script_holds_the_source(name: str, _base: Path) -> None:
    scr = (DATA / f"{name}.scr").read_bytes()
    assert script_text(scr, "x.scr") == (DATA / f"{name}.source").read_text()


@pytest.mark.parametrize(("offset", "where", "message"), [
    (20, "1:5", "Bad header crc"),  # a byte of ih_load
    (64 + 8 + 3, "1:25", "Bad data crc"),  # a byte of the script text
])
def test_mkimage_crc_failures_name_the_crc(offset: int, where: str, message: str) -> None:
    data = bytearray((DATA / "paired.scr").read_bytes())
    data[offset] ^= 0x20
    with pytest.raises(InputError) as info:
        script_text(bytes(data), "x.scr")
    assert str(info.value).startswith(f"x.scr:{where}: {message}")


# ------------------------------------------------------------------ whole scripts

FDTPUT = shutil.which("fdtput")
DTC = shutil.which("dtc")


def replay_with_fdtput(script: Path, base_dtb: Path, out: Path) -> bytes:
    """The script's fdt edits done by libfdt itself (fdtput), normalised by dtc."""
    assert FDTPUT and DTC
    shutil.copy(base_dtb, out)
    for _span, argv in iter_commands(script.read_text()):
        if argv[0] != "fdt":
            continue
        if argv[1].startswith("mk"):
            subprocess.run([FDTPUT, "-c", str(out), argv[2].rstrip("/") + "/" + argv[3]],
                           check=True)
        elif argv[1].startswith("se"):
            value = parse_prop(argv[4:], b"") if len(argv) > 4 else b""
            subprocess.run([FDTPUT, "-t", "bx", str(out), argv[2], argv[3],
                            *(f"{b:02x}" for b in value)], check=True)
    return subprocess.run([DTC, "-q", "-I", "dtb", "-O", "dtb", str(out)], check=True,
                          capture_output=True).stdout


@pytest.mark.skipif(not (FDTPUT and DTC), reason="fdtput/dtc (device-tree-compiler) missing")
@pytest.mark.parametrize(("name", "base_dtb"), SCRIPTS)
def test_trees_equal_libfdts_byte_for_byte(name: str, base_dtb: Path, tmp_path: Path) -> None:
    # order included: libfdt puts a new property first and a new node before the
    # existing children, and so do we
    ours = write_dtb(load_uboot(DATA / f"{name}.source", base_dtb))
    assert ours == replay_with_fdtput(DATA / f"{name}.source", base_dtb, tmp_path / "t.dtb")


def _canonical(tree: Tree) -> bytes:
    """The tree's DTB with every node's properties and children sorted by name."""
    for node in tree.walk():
        node.properties = dict(sorted(node.properties.items()))
        node.children = dict(sorted(node.children.items()))
    return write_dtb(tree)


def _as_dts(script: Path) -> str:
    """The script's nodes written in DTS: one `&{/path}` block per fdt command, each
    value as the bytes fdt_parse_prop makes of it."""
    out = []
    for _span, argv in iter_commands(script.read_text()):
        if argv[0] != "fdt":
            continue
        if argv[1].startswith("mk"):
            out.append(f"&{{{argv[2]}}} {{ {argv[3]} {{ }}; }};")
        elif argv[1].startswith("se"):
            value = parse_prop(argv[4:], b"") if len(argv) > 4 else b""
            body = f" = [{value.hex(' ')}]" if value else ""
            out.append(f"&{{{argv[2]}}} {{ {argv[3]}{body}; }};")
    return "\n".join(out) + "\n"


@pytest.mark.skipif(not DTC, reason="dtc missing")
@pytest.mark.parametrize(("name", "base_dtb"), SCRIPTS)
def test_script_gives_the_tree_the_same_dts_gives(name: str, base_dtb: Path,
                                                  tmp_path: Path) -> None:
    assert DTC
    dts = subprocess.run([DTC, "-q", "-I", "dtb", "-O", "dts", str(base_dtb)], check=True,
                         capture_output=True, text=True).stdout
    src = tmp_path / "same.dts"
    src.write_text(dts + _as_dts(DATA / f"{name}.source"))
    from_dts = load(src)
    from_script = load_uboot(DATA / f"{name}.source", base_dtb)
    # U-Boot differs only in order: new properties first, new nodes before the
    # existing ones, so each in reverse of the script's order...
    chosen = from_script.find("/chosen")
    assert chosen is not None
    made = [c.name for c in chosen.child_nodes() if c.name.startswith("domU")]
    assert made == sorted(made, reverse=True)
    assert write_dtb(from_script) != write_dtb(from_dts)
    # ...and otherwise the same nodes, properties and values
    assert _canonical(from_script) == _canonical(from_dts)


@pytest.mark.parametrize("suffix", [".source", ".scr"])
def test_dangling_phandle_is_reported_at_the_script_line(suffix: str) -> None:
    script = DATA / f"one-sided{suffix}"
    result = check(Config.from_tree(load_uboot(script, QEMU), xen_profile("4.17"), "auto"))
    assert result.errors == 1
    found = [f for f in result.findings if f.rule == "XEN-PEER-UNKNOWN"]
    assert len(found) == 1
    loc = str(found[0].locations[0])
    assert loc.startswith(f"{script}:29:1"), loc
    line = (DATA / "one-sided.source").read_text().splitlines()[28]
    assert line.startswith("fdt set /chosen/domU0/evtchn@1 xen,evtchn ")


@pytest.mark.parametrize(("name", "base_dtb"), SCRIPTS)
def test_every_node_the_script_made_points_at_its_line(name: str, base_dtb: Path) -> None:
    script = DATA / f"{name}.source"
    lines = script.read_text().splitlines()
    tree = load_uboot(script, base_dtb)
    base_tree = load(base_dtb)

    def made(node: Node) -> bool:
        return base_tree.find(node.path) is None

    new_nodes = [n for n in tree.walk() if made(n)]
    assert new_nodes
    for node in new_nodes:
        assert node.span.file == str(script)
        text = lines[node.span.line - 1]
        assert text.startswith("fdt mknod ") and text.split()[3] == node.name
        for prop in node.prop_list():
            ptext = lines[prop.span.line - 1].split()
            assert ptext[:2] == ["fdt", "set"] and ptext[3] == prop.name.replace("#", "\\#")
    if name == "paired":
        result = check(Config.from_tree(tree, xen_profile("4.17"), "auto"))
        assert not result.errors


# ------------------------------------------------------------------ the command line


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    from evtchn_spec.cli import main

    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_cli_check_points_at_the_script_line(capsys: pytest.CaptureFixture[str]) -> None:
    script = str(DATA / "one-sided.scr")
    rc, out, _ = cli(capsys, "check", "--uboot-base", str(QEMU), script)
    assert rc == 1
    assert f"{script}:29:1: error[XEN-PEER-UNKNOWN]" in out
    rc, out, _ = cli(capsys, "check", "--uboot-base", str(QEMU), str(DATA / "paired.scr"))
    assert rc == 0, out


def test_cli_dump_dtb_is_the_scripts_tree(capsys: pytest.CaptureFixture[str],
                                          tmp_path: Path) -> None:
    out_file = tmp_path / "out.dtb"
    rc, _, err = cli(capsys, "dump", "--format", "dtb", "--uboot-base", str(ZCU),
                     str(DATA / "zcu102-three.scr"), "-o", str(out_file))
    assert rc == 0, err
    assert out_file.read_bytes() == write_dtb(load_uboot(DATA / "zcu102-three.source", ZCU))
    # the base is an input too: never written over
    rc, _, err = cli(capsys, "dump", "--format", "dtb", "--uboot-base", str(ZCU),
                     str(DATA / "zcu102-three.scr"), "-o", str(ZCU))
    assert rc == 2 and "refusing to write over the input file" in err


def test_cli_bad_script_is_one_line_exit_2(capsys: pytest.CaptureFixture[str],
                                           tmp_path: Path) -> None:
    bad = tmp_path / "bad.cmd"
    # ${fdt_addr_r}: the board's variable for the device tree's address
    bad.write_text("fdt addr ${fdt_addr_r}\nfdt resize\nfdt set /chosen/domU9 compatible x\n")
    rc, out, err = cli(capsys, "check", "--uboot-base", str(QEMU), str(bad))
    assert rc == 2 and not out
    assert err == f"{bad}:3:1: libfdt fdt_path_offset() returned FDT_ERR_NOTFOUND\n"


# random edit sequences: our tree and libfdt's agree, order and all

name_st = st.sampled_from(["a", "b", "c@1", "c@2"])
prop_st = st.sampled_from(["p", "q", "compatible", "xen,evtchn", "\\#size-cells"])
value_st_ = st.one_of(
    st.lists(st.integers(0, 2**32 - 1), max_size=3).map(
        lambda cs: "<" + " ".join(hex(c) for c in cs) + ">"),
    st.lists(st.integers(0, 255), max_size=4).map(
        lambda bs: "[" + " ".join(f"{b:02x}" for b in bs) + "]"),
    st.lists(st.text(alphabet="xyz,-", min_size=1, max_size=4), min_size=1, max_size=2).map(
        lambda ws: " ".join(f'"{w}"' for w in ws)),
    st.just(""),
)
def _draw_script(data: st.DataObject) -> str:
    """A script of random edits, each drawn on the tree the earlier ones made (so
    most of them apply): new nodes, sets of any value form, removals."""
    lines = ["fdt addr 0x40000000"]
    tree = base()
    for _ in range(data.draw(st.integers(1, 12), label="edits")):
        chosen = tree.find("/chosen")
        assert chosen is not None
        node = data.draw(st.sampled_from(list(chosen.walk())))
        kind = data.draw(st.sampled_from(["mk"] * 3 + ["set"] * 4 + ["rmprop", "rmnode"]))
        if kind == "mk":
            line = f"fdt mknod {node.path} {data.draw(name_st)}"
        elif kind == "set":
            line = f"fdt set {node.path} {data.draw(prop_st)} {data.draw(value_st_)}".rstrip()
        elif kind == "rmprop":
            props = [p.name for p in node.prop_list()]
            if not props:
                continue
            # an unescaped `#` would start a comment: `fdt rm /chosen` would follow
            pick = data.draw(st.sampled_from(props)).replace("#", "\\#")
            line = f"fdt rm {node.path} {pick}"
        else:
            if node is chosen:
                continue
            line = f"fdt rm {node.path}"
        try:
            tree = run_script("\n".join([*lines, line]) + "\n", "s.cmd", base())
        except InputError:
            continue  # a clashing mknod: U-Boot refuses it too
        lines.append(line)
    return "\n".join(lines) + "\n"


@pytest.mark.skipif(not (FDTPUT and DTC), reason="fdtput/dtc (device-tree-compiler) missing")
@settings(max_examples=30, deadline=None)
@given(st.data())
def test_random_edits_equal_libfdts(data: st.DataObject) -> None:
    assert FDTPUT and DTC
    script_text_ = _draw_script(data)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "t.dtb"
        shutil.copy(QEMU, out)
        for _span, argv in iter_commands(script_text_):
            if argv[1].startswith("mk"):
                cmd = [FDTPUT, "-c", str(out), argv[2] + "/" + argv[3]]
            elif argv[1].startswith("se"):
                value = parse_prop(argv[4:], b"") if len(argv) > 4 else b""
                cmd = [FDTPUT, "-t", "bx", str(out), argv[2], argv[3],
                       *(f"{b:02x}" for b in value)]
            elif argv[1].startswith("rm") and len(argv) > 3:
                cmd = [FDTPUT, "-d", str(out), argv[2], argv[3]]
            elif argv[1].startswith("rm"):
                cmd = [FDTPUT, "-r", str(out), argv[2]]
            else:
                continue
            subprocess.run(cmd, check=True, capture_output=True)
        theirs = subprocess.run([DTC, "-q", "-I", "dtb", "-O", "dtb", str(out)], check=True,
                                capture_output=True).stdout
    ours = write_dtb(run_script(script_text_, "s.cmd", base()))
    assert ours == theirs, script_text_
