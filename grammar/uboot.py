"""U-Boot scripts as input: run a boot script's `fdt` commands over a base DTB.

Integrators of dom0less systems rarely hand Xen a finished tree: ImageBuilder's
`uboot-script-gen` writes a U-Boot script that loads the board's DTB and builds
/chosen at boot with `fdt mknod` / `fdt set`. This module carries such a script out
the way U-Boot would, over the board DTB (or DTS) the user names, and returns the
same `Tree` the DTS and DTB readers return. Every node and property the script made
or changed carries the span of the script command that made it (`script:line:col`
of its first word), the base tree's keep theirs, so every finding of `check` points
at the script line that produced it.

What is modelled, and after which U-Boot source:

* the file: plain text, or a legacy `mkimage -T script` image (`_unwrap_image`, after
  U-Boot's boot/image-board.c / cmd/source.c: magic, header CRC, data CRC, type,
  length table ended by 0);
* the shell: U-Boot's (old) hush, common/cli_hush.c: `parse_stream` (words, `'...'`,
  `"..."`, backslashes removed by `done_word`, `#` comments at a word start, `;`,
  `&&`, `||`), `handle_dollar` (`$name`, `${name}`, `${name:-x}`, `${name:=x}`,
  `${name:+x}` as `lookup_param` reads them: the environment first, then hush's own
  variables), and `run_pipe_real`: a command that used a variable is flattened by
  `make_string` (quoted words wrapped in '...') and parsed again with `; $ & |`
  ordinary, so an unquoted value is split into words again and is never expanded
  twice. Lines run one by one, as `parse_stream_outer` runs them;
* `fdt`, after cmd/fdt.c `do_fdt` (subcommands matched by the same prefixes in the
  same order) and `fdt_parse_prop` for values; the tree edits follow libfdt: a new
  property goes first among its node's properties (`fdt_add_property_` splices it in
  right after the node's name), a new node goes after its parent's properties, before
  the existing children (`fdt_add_subnode_namelen`), a set of an existing property
  keeps its place; paths resolve as `fdt_path_offset` does (aliases, a name without a
  unit address matching the first child of that base name);
* `setenv`/`env set`, `run`, `echo`, and the commands in `IGNORED` (loads, boots,
  resets, caches...) that leave the tree alone. A load command sets `filesize`, whose
  value we cannot know: using it afterwards is an error, not a guess. The first boot
  command (`booti`, `bootm`, `bootz`, `bootefi`) ends the script, as it would on a
  board where it succeeds.

Anything else (`setexpr`, `if`, `fdt apply`...) is an error at its line: a command
this reader does not model is never skipped silently. Where U-Boot prints an error
and goes on with the next line, we stop: the tree Xen would get is not the one the
script meant, which is what this project exists to catch.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import load
from .errors import InputError, Span, file_span
from .inputs import read_input
from .tree import MemReserve, Node, Property, Tree

# ------------------------------------------------------------------ legacy image

IH_MAGIC = 0x27051956
IH_TYPE_SCRIPT = 6
IH_COMP_NONE = 0
_HEADER = struct.Struct(">7I4B32s")
HEADER_SIZE = _HEADER.size  # 64

_FIT_MAGIC = b"\xd0\x0d\xfe\xed"


def _unwrap_image(data: bytes, name: str) -> bytes:
    """The script inside a `mkimage -T script` legacy image, checked as U-Boot's
    `source` checks it (header CRC, then the type, then the data CRC, as with
    verify=yes, U-Boot's default). Errors point at the header field's byte offset."""

    def err(offset: int, message: str) -> InputError:
        return InputError(Span(name, 1, offset + 1), message)

    if len(data) < HEADER_SIZE:
        raise err(len(data), "legacy image: end of file inside the 64-byte header")
    magic, hcrc, _time, size, _load, _ep, dcrc, _os, _arch, itype, comp, _nm = \
        _HEADER.unpack_from(data)
    if magic != IH_MAGIC:
        raise err(0, "Bad magic number")
    head = bytearray(data[:HEADER_SIZE])
    head[4:8] = b"\0\0\0\0"
    if zlib.crc32(head) != hcrc:
        raise err(4, f"Bad header crc (header says 0x{hcrc:08x}, "
                     f"the header sums to 0x{zlib.crc32(head):08x})")
    if itype != IH_TYPE_SCRIPT:
        raise err(30, f"Bad image type {itype} (a script is type {IH_TYPE_SCRIPT})")
    body = data[HEADER_SIZE:HEADER_SIZE + size]
    if len(body) < size:
        raise err(12, f"legacy image: header says {size} data bytes, file has {len(body)}")
    if zlib.crc32(body) != dcrc:
        raise err(24, f"Bad data crc (header says 0x{dcrc:08x}, "
                      f"the data sums to 0x{zlib.crc32(body):08x})")
    if comp != IH_COMP_NONE:
        raise err(31, f"compressed script (compression {comp}) is not modelled")
    # a table of big-endian lengths ended by 0; a script has one component
    lengths: list[int] = []
    pos = 0
    while True:
        if pos + 4 > len(body):
            raise err(HEADER_SIZE + pos, "legacy image: length table runs past the data")
        (n,) = struct.unpack_from(">I", body, pos)
        pos += 4
        if n == 0:
            break
        lengths.append(n)
    if not lengths:
        raise err(HEADER_SIZE, "Empty Script")
    script = body[pos:pos + lengths[0]]
    if len(script) < lengths[0]:
        raise err(HEADER_SIZE, f"legacy image: script length {lengths[0]} runs past the data")
    return script


def script_text(data: bytes, name: str) -> str:
    """The script's text from a file's bytes: a legacy image is unwrapped; the text
    ends at its first NUL, as `run_command_list` copies it into a C string. Bytes are
    read as Latin-1, one character each (U-Boot does not decode them)."""
    if data[:4] == struct.pack(">I", IH_MAGIC):
        data = _unwrap_image(data, name)
    elif data[:4] == _FIT_MAGIC:
        raise InputError(file_span(name), "a FIT image script is not modelled "
                         "(give the plain script or a mkimage -T script image)")
    cut = data.find(b"\0")
    if cut >= 0:
        data = data[:cut]
    return data.decode("latin-1")


# ------------------------------------------------------------------ hush parser

_VAR = "\x03"  # SPECIAL_VAR_SYMBOL: brackets a variable name inside a word
_ASSIGN_FIRST = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_ALNUM_ = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_RESERVED = frozenset(("if", "then", "elif", "else", "fi", "for", "while", "until", "do",
                       "done", "in"))
SEQ, AND, OR = 0, 1, 2


@dataclass(slots=True)
class Command:
    """One simple command as hush's parser leaves it: words with backslashes removed
    and variables still marked, whether each word was quoted (`argv_nonnull`), how
    many variables it uses (`sp`), where it starts, and how it joins the next."""

    argv: list[str] = field(default_factory=list)
    nonnull: list[bool] = field(default_factory=list)
    sp: int = 0
    line: int = 0
    column: int = 0
    followup: int = SEQ


class ScriptSyntaxError(Exception):
    def __init__(self, line: int, column: int, message: str = "syntax error") -> None:
        super().__init__(message)
        self.line = line
        self.column = column


def _done_word(buf: list[str], nonnull: bool, cmd: Command) -> None:
    """hush's done_word: a word ends; each backslash is dropped and the character
    after it kept (inside single quotes too: U-Boot's done_word does it to every
    word). An unquoted empty word is no word."""
    if not buf and not nonnull:
        return
    data = "".join(buf)
    out: list[str] = []
    i = 0
    while i < len(data):
        if data[i] == "\\":
            i += 1
            if i >= len(data):
                break  # U-Boot reads past the word's end here; we keep what precedes
        out.append(data[i])
        i += 1
    cmd.argv.append("".join(out))
    cmd.nonnull.append(nonnull)


def parse_line(text: str, pos: int, line: int, col: int, ifs: str, *,
               reparsing: bool = False) -> tuple[list[Command], int, int, int]:
    """Parse from `pos` up to the first newline outside quotes (hush parses one line,
    runs it, then parses the next). Returns the commands, the position after the line,
    and the line and column there. `reparsing` is hush's FLAG_REPARSING: `; $ & |`
    are then ordinary characters."""
    cmds: list[Command] = []
    cmd = Command()
    buf: list[str] = []
    nonnull = False
    quote = False
    n = len(text)
    word_at = (line, col)

    def start_word(at: tuple[int, int]) -> None:
        nonlocal word_at
        if not buf and not nonnull:
            word_at = at
            if not cmd.argv:
                cmd.line, cmd.column = at

    def finish_word() -> None:
        nonlocal buf, nonnull
        if not cmd.argv and (buf or nonnull) and not reparsing:
            word = "".join(buf)
            if word in _RESERVED:
                raise ScriptSyntaxError(*word_at, f"hush keyword '{word}' is not modelled")
        _done_word(buf, nonnull, cmd)
        buf = []
        nonnull = False

    def finish_command(followup: int, at: tuple[int, int]) -> None:
        nonlocal cmd
        finish_word()
        if cmd.argv:
            cmd.followup = followup
            cmds.append(cmd)
        elif followup != SEQ:
            raise ScriptSyntaxError(*at)
        cmd = Command()

    def getch() -> str:
        nonlocal pos, line, col
        ch = text[pos]
        pos += 1
        if ch == "\n":
            line += 1
            col = 1
        else:
            col += 1
        return ch

    while pos < n:
        at = (line, col)
        ch = getch()
        special = ch in "\\$'\"" and not (reparsing and ch == "$")
        flow_if_quoted = ch in ";&|#" and not (reparsing and ch in ";&|")
        is_ifs = ch in ifs
        if not special and (quote or not (flow_if_quoted or is_ifs)):
            start_word(at)
            buf.append("\\" + ch if quote and ch in "*?[\\" else ch)
            continue
        if is_ifs:
            finish_word()
            if ch == "\n":
                finish_command(SEQ, at)
                return cmds, pos, line, col
            continue
        if ch == "#":
            if not buf:
                while pos < n and text[pos] != "\n":
                    getch()
            else:
                buf.append(ch)
        elif ch == "\\":
            if pos >= n:
                raise ScriptSyntaxError(*at)
            start_word(at)
            esc = getch()
            buf.append("\\\\" if quote else "\\")
            buf.append("\\" + esc if quote and esc in "*?[\\" else esc)
        elif ch == "$":
            start_word(at)
            stop = _dollar(text, pos, buf, cmd, at)
            while pos < stop:
                getch()
        elif ch == "'":
            start_word(at)
            nonnull = True
            while pos < n and text[pos] != "'":
                buf.append(getch())
            if pos >= n:
                raise ScriptSyntaxError(*at)
            getch()
        elif ch == '"':
            start_word(at)
            nonnull = True
            quote = not quote
        elif ch == ";":
            finish_command(SEQ, at)
        elif ch in "&|":
            if pos >= n or text[pos] != ch:
                raise ScriptSyntaxError(*at)
            getch()
            finish_command(AND if ch == "&" else OR, at)
    finish_command(SEQ, (line, col))
    return cmds, pos, line, col


def _dollar(text: str, pos: int, buf: list[str], cmd: Command, at: tuple[int, int]) -> int:
    """hush's handle_dollar for U-Boot, with `pos` just after the `$`: `$name`,
    `${...}` (anything up to the next `}`) and `$?` become marked variables; any
    other `$` stays a `$`. Returns the position after what it read."""
    n = len(text)
    ch = text[pos] if pos < n else ""
    if ch.isascii() and ch.isalpha():
        end = pos
        while end < n and text[end] in _ALNUM_:
            end += 1
        buf.append(_VAR + text[pos:end] + _VAR)
        cmd.sp += 1
        return end
    if ch == "{":
        end = text.find("}", pos + 1)
        if end < 0:
            raise ScriptSyntaxError(*at)
        buf.append(_VAR + text[pos + 1:end] + _VAR)
        cmd.sp += 1
        return end + 1
    if ch == "?":
        buf.append(_VAR + "?" + _VAR)
        cmd.sp += 1
        return pos + 1
    buf.append("$")
    return pos


def is_assignment(word: str) -> bool:
    """hush's is_assignment: NAME=... with NAME a letter or _ then letters, digits, _."""
    if not word or word[0] not in _ASSIGN_FIRST:
        return False
    i = 1
    while i < len(word) and word[i] in _ALNUM_:
        i += 1
    return i < len(word) and word[i] == "="


# ------------------------------------------------------------------ variables


@dataclass(slots=True)
class Environment:
    """U-Boot's environment (`setenv`) and hush's own variables (`name=value`)."""

    env: dict[str, str] = field(default_factory=dict)
    local: dict[str, str] = field(default_factory=dict)
    # variables whose value only the board knows (`filesize` after a load)
    unknown: dict[str, tuple[str, Span]] = field(default_factory=dict)
    last_return: int = 0

    def setenv(self, name: str, value: str | None) -> None:
        self.unknown.pop(name, None)
        if value is None:
            self.env.pop(name, None)
        else:
            self.env[name] = value

    def lookup(self, src: str, at: Span) -> str | None:
        """hush's lookup_param: `name`, `name:-default`, `name:=default` (also sets
        it), `name:+alt` (U-Boot's reading: empty when name is set and non-empty,
        else alt)."""
        if src == "?":
            return str(self.last_return)
        name, sep, rest = src.partition(":")
        default: str | None = None
        assign = expand_empty = False
        if sep:
            if rest[:1] == "-":
                default = rest[1:]
            elif rest[:1] == "=":
                default, assign = rest[1:], True
            elif rest[:1] == "+":
                default, expand_empty = rest[1:], True
        if name in self.unknown:
            what, where = self.unknown[name]
            raise InputError(at, f"${{{name}}} is set by '{what}' at {where}, whose value "
                                 "only the board knows (set it with setenv first)")
        p = self.env.get(name)
        if p is None:
            p = self.local.get(name)
        if not p:
            if assign and default is not None:
                self.local[name] = default
            return default
        if expand_empty:
            return ""
        return p

    def expand(self, word: str, at: Span) -> str:
        """insert_var_value: each marked variable replaced by its value (an unset one
        by nothing); newlines in the result become spaces."""
        if _VAR not in word:
            return word
        parts = word.split(_VAR)
        out: list[str] = []
        for i, part in enumerate(parts):
            if i % 2 == 0:
                out.append(part)
            else:
                out.append(self.lookup(part, at) or "")
        return "".join(out).replace("\n", " ")


def make_string(argv: Sequence[str], nonnull: Sequence[bool], envs: Environment,
                at: Span) -> str:
    """hush's make_string: the words joined by spaces, each quoted one wrapped in
    single quotes, variables substituted, a newline at the end."""
    words: list[str] = []
    for w, q in zip(argv, nonnull, strict=True):
        v = envs.expand(w, at)
        words.append(f"'{v}'" if q else v)
    return " ".join(words) + "\n"


# ------------------------------------------------------------------ fdt values

SCRATCHPAD = 1024


class PropValueError(Exception):
    """fdt_parse_prop refused the value (U-Boot's message)."""


def simple_strtoul(s: str, pos: int, base: int) -> tuple[int, int]:
    """U-Boot's lib/strto.c simple_strtoul from index `pos`: returns (value, end).
    `_parse_integer_fixup_radix`: a "0x"/"0X" prefix selects base 16 and is skipped
    (even with no hex digit after it), a leading 0 selects 8 when base is 0, else 10;
    then digits while they are below the base. No sign, no spaces. The value wraps
    at 64 bits (unsigned long on arm64)."""
    if pos < len(s) and s[pos] == "0":
        if s[pos + 1:pos + 2].lower() == "x":
            base = 16
            pos += 2
        elif base == 0:
            base = 8
    if base == 0:
        base = 10
    value = 0
    while pos < len(s):
        c = s[pos].lower()
        if c in "0123456789":
            d = ord(c) - 48
        elif c in "abcdef":
            d = ord(c) - 87
        else:
            break
        if d >= base:
            break
        value = (value * base + d) & 0xFFFFFFFFFFFFFFFF
        pos += 1
    return value, pos


def parse_prop(args: Sequence[str], old: bytes) -> bytes:
    """cmd/fdt.c fdt_parse_prop, for `fdt set PATH PROP ARGS...` (ARGS non-empty).

    * `<...>`: cells, each `simple_strtoul(cp, &newp, 0)` stored as a big-endian
      32-bit cell; the words are scanned as one text, a word ending moves on to the
      next (so `<1 2>` may be one word or three); `?` keeps the cell already there
      (the old value is copied into the scratchpad first); scanning stops at `>`
      and anything after it (the rest of that word, later words) is ignored;
    * `[...]`: bytes, each a run of hex digits read by `hextoul` and cut to 8 bits
      (`[1234]` is the one byte 0x34);
    * anything else: each word a NUL-terminated string, in order (a string list).
    Only the first character of the first word chooses (quotes were removed by the
    shell, so `"<1>"` is cells too).
    """
    data = bytearray(old[:SCRATCHPAD])
    data.extend(bytes(SCRATCHPAD - len(data)))
    out_len = 0
    first = args[0]
    if first.startswith("<"):
        idx, cur, pos = 0, first, 1
        while True:
            if pos >= len(cur):  # *newp == '\0': the next word
                idx += 1
                if idx >= len(args):
                    raise PropValueError("no closing '>' (U-Boot reads past its arguments "
                                      "here)")
                cur, pos = args[idx], 0
                continue
            if cur[pos] == ">":
                break
            cp = pos
            if cur[pos] == "?":
                pos += 1
            else:
                val, pos = simple_strtoul(cur, pos, 0)
                if out_len + 4 <= SCRATCHPAD:
                    data[out_len:out_len + 4] = (val & 0xFFFFFFFF).to_bytes(4, "big")
            out_len += 4
            if pos == cp:
                raise PropValueError(f'Sorry, I could not convert "{cur[cp:]}"')
            while pos < len(cur) and cur[pos] == " ":
                pos += 1
    elif first.startswith("["):
        idx, cur, pos = 0, first, 1
        while True:
            while pos < len(cur) and cur[pos] == " ":
                pos += 1
            if pos >= len(cur):
                idx += 1
                if idx >= len(args):
                    raise PropValueError("no closing ']' (U-Boot reads past its arguments "
                                      "here)")
                cur, pos = args[idx], 0
                continue
            if cur[pos] == "]":
                break
            if cur[pos].lower() not in "0123456789abcdef":
                raise PropValueError(f"Unexpected character '{cur[pos]}'")
            val, pos = simple_strtoul(cur, pos, 16)
            if out_len < SCRATCHPAD:
                data[out_len] = val & 0xFF
            out_len += 1
    else:
        raw = b"".join(a.encode("latin-1") + b"\0" for a in args)
        out_len = len(raw)
        data[:min(out_len, SCRATCHPAD)] = raw[:SCRATCHPAD]
    if out_len > SCRATCHPAD:
        raise PropValueError(f"value of {out_len} bytes overflows U-Boot's {SCRATCHPAD}-byte "
                          "scratchpad")
    return bytes(data[:out_len])


# ------------------------------------------------------------------ the machine

# Commands accepted with no effect on the tree or the environment we model. Loads
# set `filesize` (and `fileaddr`), which we cannot know: see LOADS.
LOADS = frozenset(("load", "fatload", "ext2load", "ext4load", "tftpb", "tftpboot", "tftp",
                   "dhcp", "nfs", "pxe", "imxtract", "sf", "ubifsload", "loadb", "loadx",
                   "loady", "btrfsload", "sqfsload", "erofsload", "zfsload", "fsload"))
BOOTS = frozenset(("booti", "bootm", "bootz", "bootefi"))
IGNORED = frozenset(("echo", "sleep", "printenv", "print", "fpga", "mmc", "usb", "scsi",
                     "pci", "virtio", "sata", "nvme", "ide", "dcache", "icache", "coninfo",
                     "bdinfo", "version", "true", "showvar", "md", "help", "dm", "part",
                     "ls", "fatls", "ext4ls", "size", "iminfo", "imi"))
# `size` also sets filesize; it is in LOADS' treatment below.
_SETS_FILESIZE = LOADS | {"size"}


@dataclass(slots=True)
class _Fdt:
    """The working device tree: the base tree once `fdt addr` named it."""

    tree: Tree
    addr: int | None = None
    scratch: bytes = b""


class ScriptError(InputError):
    """An error at a script command (one line, U-Boot's wording where it has one)."""


_NODE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789,._+-@")
_PROP_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789,._+-*#?")


def _name_matches(child: str, want: str) -> bool:
    """libfdt fdt_nodename_eq_: the whole name, or the base name when `want` has no
    unit address."""
    return child == want or ("@" not in want and child.split("@", 1)[0] == want)


def path_lookup(tree: Tree, path: str) -> Node | str:
    """libfdt fdt_path_offset: the node, or the libfdt error name. A path without a
    leading '/' starts with an alias (a property of /aliases)."""
    node = tree.root
    rest = path
    if not path.startswith("/"):
        head, slash, tail = path.partition("/")
        aliases = tree.root.children.get("aliases")
        prop = aliases.get(head) if aliases is not None else None
        target = prop.value.split(b"\0", 1)[0].decode("latin-1") if prop is not None else None
        if target is None:
            return "FDT_ERR_BADPATH"
        found = path_lookup(tree, target)
        if isinstance(found, str):
            return found
        node = found
        rest = slash + tail
    for comp in rest.split("/"):
        if not comp:
            continue
        nxt = next((c for c in node.child_nodes() if _name_matches(c.name, comp)), None)
        if nxt is None:
            return "FDT_ERR_NOTFOUND"
        node = nxt
    return node


def _set_first(node: Node, prop: Property) -> None:
    """fdt_setprop: an existing property keeps its place, a new one goes first."""
    props = node.properties
    if prop.name in props:
        props[prop.name] = prop
    else:
        node.properties = {prop.name: prop, **props}


def _add_child_first(parent: Node, child: Node) -> None:
    """fdt_add_subnode: after the parent's properties, before its other children."""
    parent.children = {child.name: child, **parent.children}


# The board's environment as the script starts, when the caller gives none: the
# variables boards keep the device tree's address in all name the base DTB (QEMU
# virt's address; any one address would do, the reader has one tree).
BOARD_ENV: dict[str, str] = {"fdt_addr": "0x40000000", "fdt_addr_r": "0x40000000",
                             "fdtcontroladdr": "40000000"}


class Runner:
    """Carries a script out: the environment, the working tree, and where we are."""

    def __init__(self, name: str, base: Tree, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.fdt = _Fdt(base)
        self.envs = Environment(env=dict(BOARD_ENV if env is None else env))
        self.booted: Span | None = None
        self.depth = 0

    # --- running text

    def run_text(self, text: str, at: Span | None = None) -> None:
        """parse_stream_outer: parse a line, run it, go on (stops after a boot)."""
        pos, line, col = 0, 1, 1
        while pos < len(text) and self.booted is None:
            ifs = self.envs.env.get("IFS", " \t\n")
            try:
                cmds, pos, line, col = parse_line(text, pos, line, col, ifs)
            except ScriptSyntaxError as exc:
                where = at or Span(self.name, exc.line, exc.column)
                raise ScriptError(where, str(exc)) from None
            self._run_list(cmds, at)

    def _run_list(self, cmds: list[Command], at: Span | None, reparsed: bool = False) -> None:
        """run_list_real: after `a ||` with a succeeding (or `a &&` with a failing)
        hush skips the rest of that and/or chain, up to and with the next command
        that ends in `;` or a newline. Every command we run succeeds (a failure is an
        error), so it is `||` that skips."""
        skipping = False
        for c in cmds:
            if self.booted is not None:
                return
            if skipping:
                skipping = c.followup != SEQ
                continue
            self._run_command(c, at or Span(self.name, c.line, c.column), reparsed)
            skipping = c.followup == OR

    def _run_command(self, c: Command, span: Span, reparsed: bool) -> None:
        """run_pipe_real: assignments, then a command that used variables is flattened
        and parsed again, else the command runs."""
        argv = c.argv
        i = 0
        while i < len(argv) and is_assignment(argv[i]):
            i += 1
        if i and i == len(argv):
            for w in argv:
                name, _, value = self.envs.expand(w, span).partition("=")
                self.envs.local[name] = value
            return
        sp = c.sp
        for w in argv[:i]:
            name, _, value = self.envs.expand(w, span).partition("=")
            self.envs.local[name] = value
            if _VAR in w:
                sp -= 1
        if sp > 0:
            flat = make_string(argv[i:], c.nonnull[i:], self.envs, span)
            try:
                cmds, _, _, _ = parse_line(flat, 0, span.line, span.column,
                                           self.envs.env.get("IFS", " \t\n"), reparsing=True)
            except ScriptSyntaxError as exc:
                raise ScriptError(span, f"{exc} (in the command after its variables were "
                                        "substituted)") from None
            self._run_list(cmds, span, reparsed=True)
            return
        self._dispatch(argv[i:], span)

    # --- commands

    def _dispatch(self, argv: list[str], span: Span) -> None:
        if not argv:
            return
        cmd = argv[0]
        if ";" in cmd:
            raise ScriptError(span, f"Unknown command '{cmd}' - try 'help' or use 'run' "
                                    "command")
        if cmd == "fdt":
            self._fdt(argv, span)
        elif cmd == "setenv" or (cmd == "env" and argv[1:2] == ["set"]):
            args = argv[1:] if cmd == "setenv" else argv[2:]
            if args[:1] == ["-f"]:
                args = args[1:]
            if not args:
                raise ScriptError(span, f"{cmd}: missing variable name (U-Boot prints "
                                        "its usage)")
            if "=" in args[0]:
                raise ScriptError(span, f"## Error: illegal character '=' in variable name "
                                        f"\"{args[0]}\"")
            self.envs.setenv(args[0], " ".join(args[1:]) if len(args) > 1 else None)
        elif cmd == "run":
            self.depth += 1
            if self.depth > 32:
                raise ScriptError(span, "run: nested too deep (a variable runs itself?)")
            for var in argv[1:]:
                text = self.envs.env.get(var)
                if text is None:
                    raise ScriptError(span, f'## Error: "{var}" not defined')
                self.run_text(text, span)
            self.depth -= 1
        elif cmd in BOOTS:
            self.booted = span
        elif cmd in _SETS_FILESIZE:
            self.envs.unknown["filesize"] = (cmd, span)
            if cmd != "size":
                self.envs.unknown["fileaddr"] = (cmd, span)
        elif cmd in IGNORED:
            pass
        else:
            raise ScriptError(span, f"command '{cmd}' is not modelled (this reader runs fdt, "
                                    "setenv, run and commands that leave the tree alone: "
                                    "loads, boots, echo...)")

    def _fdt(self, argv: list[str], span: Span) -> None:
        argc = len(argv)
        if argc < 2:
            raise ScriptError(span, "fdt: no subcommand (U-Boot prints the fdt usage)")
        sub = argv[1]

        def usage() -> ScriptError:
            return ScriptError(span, f"fdt {sub}: wrong arguments (U-Boot prints the fdt "
                                     "usage)")

        def fail(message: str) -> ScriptError:
            return ScriptError(span, message)

        if sub.startswith("ad"):
            args = argv[2:]
            if args[:1] == ["-c"]:
                return  # the control FDT: U-Boot's own, not the one handed to Xen
            if not args:
                if self.fdt.addr is None:
                    raise fail("No FDT memory address configured")
                return
            addr, _ = simple_strtoul(args[0], 0, 16)
            if self.fdt.addr is None:
                self.fdt.addr = addr
                self.envs.setenv("fdtaddr", f"{addr:x}")  # set_working_fdt_addr
            elif addr != self.fdt.addr:
                raise fail(f"fdt addr 0x{addr:x}: a second device tree is not modelled (the "
                           f"base DTB was put at 0x{self.fdt.addr:x})")
            return
        if self.fdt.addr is None:
            raise fail('No FDT memory address configured. Please configure the FDT address '
                       'via "fdt addr <address>" command. Aborting!')
        tree = self.fdt.tree

        def lookup(path: str) -> Node:
            found = path_lookup(tree, path)
            if isinstance(found, str):
                raise fail(f"libfdt fdt_path_offset() returned {found}")
            return found

        if sub.startswith("mo"):
            if argc < 4:
                raise usage()
            src, _ = simple_strtoul(argv[2], 0, 16)
            if src != self.fdt.addr:
                raise fail(f"fdt move 0x{src:x}: that is not the working device tree "
                           f"(0x{self.fdt.addr:x})")
            self.fdt.addr, _ = simple_strtoul(argv[3], 0, 16)
            self.envs.setenv("fdtaddr", f"{self.fdt.addr:x}")
        elif sub.startswith("mk"):
            if argc < 4:
                raise usage()
            parent = lookup(argv[2])
            name = argv[3]
            if any(_name_matches(c.name, name) for c in parent.child_nodes()) or \
                    name in parent.children:
                raise fail("libfdt fdt_add_subnode(): FDT_ERR_EXISTS")
            bad = next((ch for ch in name if ch not in _NODE_CHARS), None)
            if not name or bad is not None or name.count("@") > 1:
                raise fail(f"node name {name!r} is not one dtc or Xen reads (U-Boot's "
                           "libfdt would make it)")
            _add_child_first(parent, Node(name=name, span=span, parent=parent))
        elif sub.startswith("se"):
            if argc < 4:
                raise usage()
            node = lookup(argv[2])
            prop = argv[3]
            bad = next((ch for ch in prop if ch not in _PROP_CHARS), None)
            if not prop or bad is not None:
                raise fail(f"property name {prop!r} is not one dtc or Xen reads (U-Boot's "
                           "libfdt would make it)")
            if argc == 4:
                value = b""
            else:
                existing = node.get(prop)
                old = existing.value if existing is not None else b""
                if len(old) > SCRATCHPAD:
                    raise fail(f"prop ({len(old)}) doesn't fit in scratchpad!")
                # the scratchpad is static: a `?` past the old value reads what an
                # earlier `fdt set` left there
                old = old + self.fdt.scratch[len(old):]
                try:
                    value = parse_prop(argv[4:], old)
                except PropValueError as exc:
                    raise fail(str(exc)) from None
                self.fdt.scratch = value + self.fdt.scratch[len(value):]
            _set_first(node, Property(prop, value, span))
        elif sub.startswith("g"):
            self._fdt_get(argv, span, lookup)
        elif sub.startswith(("p", "l")):
            node = lookup(argv[2] if argc > 2 else "/")
            if argc > 3 and node.get(argv[3]) is None:
                raise fail("libfdt fdt_getprop(): FDT_ERR_NOTFOUND")
        elif sub.startswith("rm"):
            if argc < 3:
                raise usage()
            node = lookup(argv[2])
            if argc > 3:
                if node.get(argv[3]) is None:
                    raise fail("libfdt fdt_delprop(): FDT_ERR_NOTFOUND")
                del node.properties[argv[3]]
            else:
                if node.parent is None:
                    raise fail("libfdt fdt_del_node(): FDT_ERR_BADOFFSET")
                del node.parent.children[node.name]
        elif sub.startswith("h"):
            if argc == 5:
                raise fail("fdt header get is not modelled")
        elif sub.startswith("boo"):
            if argc != 3:
                raise usage()
            tree.boot_cpuid_phys, _ = simple_strtoul(argv[2], 0, 16)
            tree.boot_cpuid_phys &= 0xFFFFFFFF
        elif sub.startswith("rs"):
            what = argv[2][:1] if argc > 2 else ""
            if what == "p":
                return
            if what == "a" and argc >= 5:
                a, _ = simple_strtoul(argv[3], 0, 16)
                s, _ = simple_strtoul(argv[4], 0, 16)
                tree.memreserves.append(MemReserve(a, s, span))
            elif what == "d" and argc >= 4:
                idx, _ = simple_strtoul(argv[3], 0, 16)
                if idx >= len(tree.memreserves):
                    raise fail("libfdt fdt_del_mem_rsv(): FDT_ERR_NOTFOUND")
                del tree.memreserves[idx]
            else:
                raise usage()
        elif sub.startswith("cho"):
            if argc not in (2, 4):
                raise usage()
            if argc == 4:
                raise fail("fdt chosen with an initrd is not modelled")
            chosen = tree.root.children.get("chosen")
            if chosen is None:
                chosen = Node(name="chosen", span=span, parent=tree.root)
                _add_child_first(tree.root, chosen)
            bootargs = self.envs.env.get("bootargs")
            if bootargs is not None:
                _set_first(chosen, Property("bootargs",
                                            bootargs.encode("latin-1") + b"\0", span))
        elif sub.startswith("re"):
            return
        elif sub.startswith(("me", "boa", "sys", "che", "ap")):
            raise fail(f"fdt {sub} is not modelled (its effect depends on the board or on "
                       "memory this reader does not have)")
        else:
            raise fail(f"fdt {sub}: unknown subcommand (U-Boot prints the fdt usage)")

    def _fdt_get(self, argv: list[str], span: Span, lookup: Callable[[str], Node]) -> None:
        """`fdt get value|size|name VAR PATH X`: sets VAR as cmd/fdt.c does."""
        argc = len(argv)
        if argc < 5:
            raise ScriptError(span, "fdt get: wrong arguments (U-Boot prints the fdt usage)")
        what, var, node = argv[2], argv[3], lookup(argv[4])
        if what.startswith("s") and argc == 5:
            self.envs.setenv(var, f"{len(node.children):x}")
            return
        if argc < 6:
            raise ScriptError(span, "fdt get: wrong arguments (U-Boot prints the fdt usage)")
        if what.startswith("n"):
            idx, _ = simple_strtoul(argv[5], 0, 16)
            kids = node.child_nodes()
            if idx >= len(kids):
                raise ScriptError(span, "libfdt node not found")
            self.envs.setenv(var, kids[idx].name)
            return
        prop = node.get(argv[5])
        if prop is None:
            raise ScriptError(span, "libfdt fdt_getprop(): FDT_ERR_NOTFOUND")
        if what.startswith("s"):
            self.envs.setenv(var, f"{len(prop.value):x}")
        elif what.startswith("v"):
            self.envs.setenv(var, _value_text(prop.value, span))
        else:
            raise ScriptError(span, f"fdt get {what} is not modelled")


def _value_text(v: bytes, span: Span) -> str:
    """fdt_value_env_set for a whole property: a printable string list as its first
    string, one cell as 0x%08X, else an error (the hex-dump forms are not modelled)."""
    if v and v[-1] == 0 and all(p and all(32 <= c < 127 for c in p) for p in v[:-1].split(b"\0")):
        return v[:-1].split(b"\0", 1)[0].decode("latin-1")
    if len(v) == 4:
        return f"0x{int.from_bytes(v, 'big'):08X}"
    raise ScriptError(span, "fdt get value of this property is not modelled")


def _phandle_span(node: Node) -> Span:
    prop = node.get("phandle") or node.get("linux,phandle")
    return prop.span if prop is not None else node.span


def _finish(tree: Tree) -> None:
    """What the DTB reader checks after reading: phandles (length, value, clashes)
    give Node.phandle and Tree.phandles; labels of deleted nodes go."""
    tree.phandles = {}
    for node in tree.walk():
        node.phandle = None
        values: dict[str, int] = {}
        for pname in ("phandle", "linux,phandle"):
            prop = node.get(pname)
            if prop is None:
                continue
            if len(prop.value) != 4:
                raise InputError(prop.span, f"bad length ({len(prop.value)}) {pname} "
                                            f"property in {node.path}")
            val = int.from_bytes(prop.value, "big")
            if val in (0, 0xFFFFFFFF):
                raise InputError(prop.span, f"bad value (0x{val:x}) in {pname} property of "
                                            f"{node.path}")
            values[pname] = val
        if len(set(values.values())) > 1:
            raise InputError(node.span, f"mismatching 'linux,phandle' "
                                        f"(0x{values['linux,phandle']:x}) and 'phandle' "
                                        f"(0x{values['phandle']:x}) in {node.path}")
        if values:
            ph = next(iter(values.values()))
            other = tree.phandles.get(ph)
            if other is not None:
                # reported at the script's phandle when one of the two is the script's
                first, second = (node, other) if _phandle_span(other).file == tree.source \
                    else (other, node)
                raise InputError(_phandle_span(second), f"duplicated phandle 0x{ph:x} in "
                                 f"{second.path} (seen before at {first.path})")
            node.phandle = ph
            tree.phandles[ph] = node
    live = {id(n) for n in tree.walk()}
    tree.labels = {k: n for k, n in tree.labels.items() if id(n) in live}


def run_script(text: str, name: str, base: Tree, env: dict[str, str] | None = None) -> Tree:
    """Carry out script `text` (named `name` in spans) over `base` (changed in place
    and returned). `env` is the board's environment before the script runs."""
    runner = Runner(name, base, env)
    runner.run_text(text)
    base.source = name
    _finish(base)
    return base


def load_uboot(script_path: str | Path, base_path: str | Path,
               env: dict[str, str] | None = None) -> Tree:
    """The tree a U-Boot script (plain text or mkimage -T script image) makes of the
    board's device tree (`base_path`: a DTB, or DTS, read as `load` reads it)."""
    name = str(script_path)
    try:
        data = read_input(name)
    except OSError as exc:
        raise InputError(file_span(name), f"cannot read file: {exc.strerror or exc}") from None
    text = script_text(data, name)
    base = load(base_path)
    return run_script(text, name, base, env)


def iter_commands(text: str, name: str = "<script>") -> Iterator[tuple[Span, list[str]]]:
    """The commands of a script as hush splits them, without running anything or
    expanding variables (for tools and tests): (span of the first word, words)."""
    pos, line, col = 0, 1, 1
    while pos < len(text):
        try:
            cmds, pos, line, col = parse_line(text, pos, line, col, " \t\n")
        except ScriptSyntaxError as exc:
            raise InputError(Span(name, exc.line, exc.column), str(exc)) from None
        for c in cmds:
            yield Span(name, c.line, c.column), c.argv
