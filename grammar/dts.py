"""DTS text to a resolved `Tree`, as dtc 1.6.1 compiles it.

lark LALR with the contextual lexer and an inline transformer (the only configuration
fast enough: README.md's benchmark section has the figures). lark costs about the same per token
whatever the token, so the fast grammar lexes whole statements and whole leaf nodes as
single tokens (PROPSTMT, NODEOPEN, NODELEAF, NODECLOSE: see dts.lark) and the
transformer takes them apart here (`_stmt`, `_node_head`), building exactly what the
token-by-token way builds. Any error sends the input through the base grammar (the same
file without those shortcuts), so every error keeps dtc's token boundaries.

dtc's lexer-level features live in the lexer:
`/include/` switches to another buffer (the parse's `_Lexer` drives lark's contextual
lexers and keeps a stack of buffers), and cpp line markers (`# 12 "file.dtsi" 1`) remap
positions. Each buffer gets its own range of "virtual" line numbers, so a token's line
alone says which file and real line it came from (a bisect in a small table, only when a
span is made).

Spans: line and column are 1-based; `end_line`/`end_column` point just past the last
character (exclusive), so a one-character token at column 5 ends at column 6. A Piece's
span is exactly its literal (`0x10`, `(1 + 2)`, `&lbl`, `"str"`, `[00 11]`).

For /include/ and /incbin/ the search is dtc's: next to the file holding the directive,
then each include dir. With cpp the main text is cpp's output; its line markers name the
user's files, and the "next to" directory is the original file's (as Linux passes
`-i $(dir $<)` to dtc).

Parse state: each parse makes its own `_Ctx` (positions, depth counters, the files it
read) and binds its own transformer and lexer callbacks to it; lark's tables and
compiled lexers are shared and never written by a parse (`_Grammar`), so parses in
several threads need no lock. The files a parse read become `Tree.sources`.

Inputs over 1 MiB leave their tree in the garbage collector's permanent generation
(`gc.freeze()`): a 100k-channel tree is millions of objects, and rescanning them in every
later full collection costs more than the parse. `gc.unfreeze()` undoes it.
"""

from __future__ import annotations

import bisect
import gc
import os
import re
import sys
from array import array
from collections.abc import Callable, Iterator, Sequence
from copy import copy
from functools import partial
from itertools import islice
from operator import add
from pathlib import Path
from sys import intern
from typing import Any

from lark import Lark, Token, Transformer
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken
from lark.lexer import BasicLexer, LexerState, LexerThread
from lark.parsers.lalr_parser import _Parser
from lark.utils import TextSlice

from .errors import InputError, Span
from .inputs import read_input, read_slice
from .resolve import MK_LABEL, MK_PATH, MK_PHANDLE, LNode, LProp, Marker, Resolver, add_label
from .tree import (
    PIECE_KIND_INDEX,
    MemReserve,
    Piece,
    PieceKind,
    Pieces,
    Tree,
    flat_pieces,
    pack_flat,
    pack_pieces,
    unpack_pieces,
)

MAX_INCLUDE_DEPTH = 200  # dtc's MAX_SRCFILE_DEPTH
# dtc's bison stack holds 10,000 entries and each open node takes 3 (name, `{`, its
# properties), so dtc accepts at most 3,330 nested levels below the root ("memory
# exhausted" past that); deeper text is refused here too, at the `{` that passes it.
MAX_NODE_DEPTH = 3331  # open braces, the root's included
# The same stack holds one entry per open `(`: dtc fails at the 9,990th in a cell.
# (Its exact limits shift a little with what else is open; these are its maxima, so
# whatever dtc accepts is accepted here.)
MAX_PAREN_DEPTH = 9989
_FREEZE_BYTES = 1 << 20  # inputs above this leave their tree in gc's permanent generation
M64 = (1 << 64) - 1
INT_MAX = 0x7FFFFFFF
_SPACE = " \t\n\v\f\r"
_ESC = {"a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13}


class _Include(Exception):
    """Raised by the INCLUDE lexer callback: the lexer loop switches buffers."""

    def __init__(self, tok: Token) -> None:
        super().__init__()
        self.tok = tok


class _Ctx:
    """Per-parse state shared by the lexer, its callbacks and the transformer."""

    def __init__(self, name: str, text: str, include_dirs: Sequence[str], main_dir: str | None,
                 resolver: Resolver) -> None:
        self.name = name
        self.include_dirs = list(include_dirs)
        self.resolver = resolver
        self.header_flags: int | None = None
        # segment table: virtual start line -> (file shown, real line at start, real dir)
        self.starts: list[int] = [1]
        self.segs: list[tuple[int, str, int, str | None]] = [(1, name, 1, main_dir)]
        self.single = True
        self.next_vline = text.count("\n") + 3
        self.seen_node_first = False
        self.depth = 0  # `{` not yet closed (the root's included)
        self.parens = 0  # `(` not yet closed
        # short string values ("okay", compatibles) repeat across thousands of nodes
        self.strings: dict[bytes, bytes] = {}
        # the files this parse read, in order (Tree.sources): the main one, each
        # /include/ and /incbin/, and each file cpp's line markers name
        self.sources: dict[str, None] = {name: None}

    # ---- positions ----
    def where(self, vline: int) -> tuple[str, int, str | None]:
        if self.single:
            return self.name, vline, self.segs[0][3]
        i = bisect.bisect_right(self.starts, vline) - 1
        vs, f, real, d = self.segs[i]
        return f, real + vline - vs, d

    def span(self, a: Token, b: Token) -> Span:
        """From the start of token a to the end of token b (whitespace after b excluded)."""
        eline, ecol = _end(self, b)
        if self.single:
            return Span(self.name, a.line, a.column, eline, ecol)  # type: ignore[arg-type]
        f, line, _ = self.where(a.line)  # type: ignore[arg-type]
        return Span(f, line, a.column, eline, ecol)  # type: ignore[arg-type]

    def tspan(self, t: Token) -> Span:
        return self.span(t, t)

    def add_segment(self, vstart: int, fname: str, real: int, d: str | None) -> None:
        self.single = False
        i = bisect.bisect_right(self.starts, vstart)
        self.starts.insert(i, vstart)
        self.segs.insert(i, (vstart, fname, real, d))

    # ---- files ----
    def open_file(self, fname: str, cur_dir: str | None, at: Span,
                  part: tuple[int, int] | None = None) -> tuple[str, bytes]:
        """dtc's fopen_any_on_path: next to the including file, then each -i dir.

        The whole file (an /include/, a whole /incbin/), within inputs.MAX_INPUT_BYTES,
        or with `part` = (offset, length) only that slice (an /incbin/ with a range:
        exactly the bytes asked for, from any file)."""
        cands: list[str] = []
        if fname.startswith("/"):
            cands.append(fname)
        else:
            cands.append(fname if not cur_dir else os.path.join(cur_dir, fname))
            cands += [os.path.join(d, fname) for d in self.include_dirs]
        for c in cands:
            try:
                if part is None:
                    data = read_input(c, at, f'"{fname}"')
                else:
                    data = read_slice(c, part[0], part[1], at, fname)
                self.sources.setdefault(c)
                return c, data
            except IsADirectoryError:
                raise InputError(at, f'Couldn\'t open "{fname}": Is a directory') from None
            except OSError:
                continue
        raise InputError(at, f'Couldn\'t open "{fname}": No such file or directory')


# ---- lexer callbacks (bound to one parse's _Ctx by _Lexers) ----

def _on_linemarker(ctx: _Ctx, tok: Token) -> Token:
    text = str(tok)
    q1 = text.index('"')
    q2 = text.rindex('"')
    digits = text[1:q1].replace("line", "").split()
    fname = _unescape(text, q1 + 1, q2, None).decode("latin-1")
    if "\0" in fname:
        raise InputError(ctx.tspan(tok), "nul in line number directive")
    _, _, d = ctx.where(tok.line)  # type: ignore[arg-type]
    # the marker names the *next* line; dtc reads the number with atoi (a C int), so
    # one past INT_MAX means nothing to it either: it is held there (and no digit
    # string is too long for int())
    num = digits[0].lstrip("0") or "0"
    line = min(int(num), INT_MAX) if len(num) <= 10 else INT_MAX
    ctx.add_segment(tok.line + 1, fname, line, d)  # type: ignore[operator]
    if fname not in _CPP_BUILTINS:
        ctx.sources.setdefault(fname)
    return tok


_CPP_BUILTINS = frozenset(("<built-in>", "<command-line>"))  # line markers that name no file


def _on_open(ctx: _Ctx, tok: Token) -> Token:
    """A `{` (alone, or in a NODEOPEN token): one level deeper, within dtc's limit."""
    ctx.depth += 1
    if ctx.depth > MAX_NODE_DEPTH:
        raise InputError(ctx.tspan(tok), f"nodes nested too deeply (more than "
                         f"{MAX_NODE_DEPTH - 1} levels below the root, where dtc's parser "
                         "runs out of stack)")
    return tok


def _on_close(ctx: _Ctx, tok: Token) -> Token:
    ctx.depth -= 1
    return tok


def _on_lpar(ctx: _Ctx, tok: Token) -> Token:
    """A `(`: dtc's parser stack holds 9,989 of them at most."""
    ctx.parens += 1
    if ctx.parens > MAX_PAREN_DEPTH:
        raise InputError(ctx.tspan(tok), f"parentheses nested too deeply (more than "
                         f"{MAX_PAREN_DEPTH}, where dtc's parser runs out of stack)")
    return tok


def _on_rpar(ctx: _Ctx, tok: Token) -> Token:
    ctx.parens -= 1
    return tok


def _on_char(ctx: _Ctx, tok: Token) -> Token:
    """Character literals are checked when lexed, as dtc's lexer does."""
    _char(ctx, tok)
    return tok


def _on_include(ctx: _Ctx, tok: Token) -> Token:
    raise _Include(tok)


class _Lexers(dict[int, BasicLexer]):
    """One parse's lexer for each parser state: lark's shared one for that state
    (its compiled scanner read-only), copied with the callbacks bound to this parse's
    _Ctx. Made on first use: a parse meets a few of the 63 distinct lexers."""

    def __init__(self, shared: dict[int, BasicLexer], ctx: _Ctx) -> None:
        super().__init__()
        self.shared = shared
        self.callbacks = {k: partial(f, ctx) for k, f in _LEXER_CALLBACKS.items()}
        self.copies: dict[int, BasicLexer] = {}

    def __missing__(self, state: int) -> BasicLexer:
        base = self.shared[state]
        lexer = self.copies.get(id(base))
        if lexer is None:
            base.scanner  # noqa: B018 - lark builds scanner and callbacks on first use
            # (no lark callback of its own on these terminals: theirs would be chained)
            assert not self.callbacks.keys() & base.callback.keys()
            lexer = self.copies[id(base)] = copy(base)
            lexer.callback = {**base.callback, **self.callbacks}
        self[state] = lexer
        return lexer


class _Lexer:
    """One parse's lexer: lark's contextual lexing plus dtc's buffer stack for
    `/include/`."""

    def __init__(self, shared: dict[int, BasicLexer], ctx: _Ctx) -> None:
        self.lexers = _Lexers(shared, ctx)
        self.ctx = ctx

    def lex(self, lexer_state: LexerState, parser_state: Any) -> Iterator[Token]:
        ctx = self.ctx
        stack: list[LexerState] = []
        lexers = self.lexers
        state = lexer_state
        while True:
            try:
                while True:
                    yield lexers[parser_state.position].next_token(state, parser_state)
            except EOFError:
                if not stack:
                    return
                state = stack.pop()
            except _Include as inc:
                tok = inc.tok
                at = ctx.tspan(tok)
                if len(stack) + 1 >= MAX_INCLUDE_DEPTH:
                    raise InputError(at, "Includes nested too deeply") from None
                text = str(tok)
                q1 = text.index('"')
                fname = text[q1 + 1 : -1]
                _, _, cur_dir = ctx.where(tok.line)  # type: ignore[arg-type]
                full, data = ctx.open_file(fname, cur_dir, at)
                new_text = data.decode("latin-1")
                vbase = ctx.next_vline
                ctx.next_vline += new_text.count("\n") + 3
                ctx.add_segment(vbase, full, 1, os.path.dirname(full) or None)
                new_state = LexerState(TextSlice(new_text, 0, len(new_text)))
                new_state.line_ctr.line = vbase
                stack.append(state)
                state = new_state
            except UnexpectedCharacters as e:
                f, line, _ = ctx.where(e.line)
                ch = e.char if e.char not in ("\n", "") else "end of line"
                raise InputError(Span(f, line, e.column), f"syntax error (unexpected {ch!r})") \
                    from None


# ---------------------------------------------------------------- literals

def _strtol_prefix(x: str, base: int) -> tuple[int, int]:
    """C strtol on a short buffer: (value, characters consumed), 0 consumed if none."""
    i = 0
    n = len(x)
    while i < n and x[i] in _SPACE:
        i += 1
    neg = False
    if i < n and x[i] in "+-":
        neg = x[i] == "-"
        i += 1
    digits = "01234567" if base == 8 else "0123456789abcdefABCDEF"
    if base == 16 and i + 2 < n and x[i] == "0" and x[i + 1] in "xX" and x[i + 2] in digits:
        i += 2
    j = i
    while j < n and x[j] in digits:
        j += 1
    if j == i:
        return 0, 0
    v = int(x[i:j], base)
    return (-v if neg else v), j


def _unescape(text: str, i: int, end: int, at: Span | None) -> bytes:
    """dtc's data_copy_escape_string on text[i:end] (without the NUL).

    Like dtc, an escape may read past `end` (into the closing quote): `'\\'` is a quote.
    """
    if "\\" not in text[i:end]:
        return text[i:end].encode("latin-1")
    out = bytearray()
    while i < end:
        c = text[i]
        i += 1
        if c != "\\":
            out.append(ord(c))
            continue
        c = text[i] if i < len(text) else "\0"
        i += 1
        if c in _ESC:
            out.append(_ESC[c])
        elif "0" <= c <= "7":
            v, used = _strtol_prefix(text[i - 1 : i + 2], 8)
            i += used - 1
            out.append(v & 0xFF)
        elif c == "x":
            v, used = _strtol_prefix(text[i : i + 2], 16)
            if used == 0:
                raise InputError(at or Span("<unknown>", 0, 0),
                                 "\\x used with no following hex digits")
            i += used
            out.append(v & 0xFF)
        else:
            out.append(ord(c) & 0xFF)
    return bytes(out)


def _number(ctx: _Ctx, tok: Token) -> int:
    return _literal(str(tok), tok, ctx)


def _literal(s: str, at: Token | Span, ctx: _Ctx | None = None) -> int:
    """dtc's strtoull(text, 0) with its checks: octal after a leading 0, 64-bit range."""
    body = s.rstrip("UL")
    shown = s if len(s) <= 40 else s[:37] + "..."

    def where() -> Span:
        if isinstance(at, Span):
            return at
        assert ctx is not None
        return ctx.tspan(at)

    if body[0] != "0" or len(body) == 1:
        digits, base = body, 10
    elif body[1] in "xX":
        digits, base = body[2:], 16
    else:
        if any(ch not in "01234567" for ch in body):
            raise InputError(where(), f"Bad integer literal '{shown}'")
        digits, base = body, 8
    digits = digits.lstrip("0") or "0"
    if len(digits) > 64:  # far beyond 2**64 in any base; keeps int() off huge strings
        raise InputError(where(), f"Integer literal '{shown}' out of range")
    v = int(digits, base)
    if v > M64:
        raise InputError(where(), f"Integer literal '{shown}' out of range")
    return v


def _char(ctx: _Ctx, tok: Token) -> int:
    s = str(tok)
    d = _unescape(s, 1, len(s) - 1, ctx.tspan(tok))
    if not d:
        raise InputError(ctx.tspan(tok), "Empty character literal")
    if len(d) > 1:
        raise InputError(ctx.tspan(tok),
                         f"Character literal has {len(d)} characters instead of 1")
    return d[0]


def _string(ctx: _Ctx, tok: Token) -> bytes:
    s = str(tok)
    if "\\" not in s:
        return s[1:-1].encode("latin-1") + b"\0"
    return _unescape(s, 1, len(s) - 1, ctx.tspan(tok)) + b"\0"


def _syntax(ctx: _Ctx, tok: Token, what: str = "") -> InputError:
    return InputError(ctx.tspan(tok), "syntax error" + (f": {what}" if what else ""))


# ---------------------------------------------------------------- expressions

# (a division by zero raises ZeroDivisionError: `binop` reports it where the operator is)
_BIN: dict[str, Callable[[int, int], int]] = {
    "OROR": lambda a, b: int(bool(a) or bool(b)),
    "ANDAND": lambda a, b: int(bool(a) and bool(b)),
    "PIPE": lambda a, b: a | b,
    "CARET": lambda a, b: a ^ b,
    "AMP": lambda a, b: a & b,
    "EQEQ": lambda a, b: int(a == b),
    "NEQ": lambda a, b: int(a != b),
    "LT": lambda a, b: int(a < b),
    "GT": lambda a, b: int(a > b),
    "LE": lambda a, b: int(a <= b),
    "GE": lambda a, b: int(a >= b),
    "LSHIFT": lambda a, b: ((a << b) & M64) if b < 64 else 0,
    "RSHIFT": lambda a, b: (a >> b) if b < 64 else 0,
    "PLUS": lambda a, b: (a + b) & M64,
    "MINUS": lambda a, b: (a - b) & M64,
    "STAR": lambda a, b: (a * b) & M64,
    "SLASH": lambda a, b: a // b,
    "PERCENT": lambda a, b: a % b,
}

_CELL_KIND = PieceKind.CELL
_SIMPLE_ELEM = re.compile(r"([0-9][0-9a-fA-FxX]*)(?:ULL|UL|LL|U|L)?|&\{(/[^}]*)\}|&(\w+)")
# piece kinds as numbers, for the flat form the hot paths pack directly (tree.pack_flat)
_K_CELL = PIECE_KIND_INDEX[PieceKind.CELL]
_K_REF = PIECE_KIND_INDEX[PieceKind.REF]
_K_STRING = PIECE_KIND_INDEX[PieceKind.STRING]
_K_BYTES = PIECE_KIND_INDEX[PieceKind.BYTES]
_PIECE_INTS = 7  # ints a piece takes in the flat form


class _Pos:
    """Positions of offsets in `text` (one token, possibly of several lines), from the
    line and column of offset `base`. Offsets asked in increasing order cost the text
    between them only (a value of 40k lines stays linear)."""

    __slots__ = ("base", "cb", "k", "kline", "knl", "line0", "text")

    def __init__(self, text: str, base: int, line0: int, col0: int) -> None:
        self.text = text
        self.base = base
        self.line0 = line0
        self.cb = col0 - base  # column = cb + offset, on the first line
        # the last offset asked: its line, and the last newline before it (-1: none)
        self.k = base
        self.kline = line0
        self.knl = -1

    def lc(self, start: int) -> tuple[int, int]:
        """The line and column of offset start."""
        text = self.text
        if start < self.k:
            self.k, self.kline, self.knl = self.base, self.line0, -1
        nl = text.count("\n", self.k, start)
        if nl:
            self.kline += nl
            self.knl = text.rfind("\n", self.k, start)
        self.k = start
        return self.kline, (self.cb + start) if self.knl < 0 else start - self.knl

    def span_ints(self, start: int, end: int) -> tuple[int, int, int, int]:
        """From offset start to offset end (end on the same line as the char before it)."""
        line, col = self.lc(start)
        eline, ecol = self.lc(end - 1)
        return line, col, eline, ecol + 1


def _tok_pos(ctx: _Ctx, tok: Token) -> tuple[str, str, int, int]:
    """A token's text, real file, real line and column."""
    line: int = tok.line  # type: ignore[assignment]
    col: int = tok.column  # type: ignore[assignment]
    if ctx.single:
        return str(tok), ctx.name, line, col
    fname, line, _ = ctx.where(line)
    return str(tok), fname, line, col


def _simple_cells(ctx: _Ctx, tok: Token) -> tuple[str, bytes, list[Marker], Pieces, Token, Token]:
    """A SIMPLECELLS token: a plain `< >` list of 32-bit numbers and references."""
    text, fname, line, col = _tok_pos(ctx, tok)
    # a newline in the trailing whitespace moves no position inside the token
    pos = _Pos(text, 0, line, col) if "\n" in text.rstrip(_SPACE) else None
    # the piece ints go to a C int array (4 bytes an int, packed as it is: a property
    # of 10^7 cells is not 7 * 10^7 Python ints); if a position does not fit in 32
    # bits (an absurd cpp line marker), to a plain list
    flat: array[int] | list[int] = array("i")
    out = bytearray()
    markers: list[Marker] = []
    try:
        _cells_into(text, 0, fname, line, col, pos, out, markers, flat)
    except OverflowError:
        flat, out, markers = [], bytearray(), []
        _cells_into(text, 0, fname, line, col, pos, out, markers, flat)
    packed = pack_flat(fname, flat)
    return ("c", bytes(out), markers, flat_pieces(fname, flat) if packed is None else packed,
            tok, tok)


def _cells_into(text: str, base: int, fname: str, line0: int, cb: int, pos: _Pos | None,
                out: bytearray, markers: list[Marker], flat: array[int] | list[int]) -> int:
    """Appends the plain `< >` list at text[base] to out, its markers to markers and
    its pieces to flat (tree.pack_flat's ints); returns the index just past its `>`.
    Positions: on line0 at column cb + offset, or from pos if the list may span lines.
    A reference's marker leaves its span to its REF piece (tree.RawRef)."""
    end_list = text.index(">", base)
    if (pos is None and end_list - base > _BULK_MIN and type(flat) is array
            and _bulk_cells(text, base, end_list, line0, cb, out, flat)):
        return end_list + 1
    for m in _SIMPLE_ELEM.finditer(text, base, end_list):
        a, b = m.span()
        if pos is None:
            line, col = line0, cb + a
        else:
            line, col = pos.lc(a)
        off = len(out)
        digits = m.group(1)
        if digits is not None:
            if digits[0] != "0":
                v = (int(digits) if len(digits) < 20
                     else _literal(m.group(0), Span(fname, line, col, line, col + b - a)))
            elif 2 < len(digits) < 19 and digits[1] in "xX":  # the regex checked the digits
                v = int(digits, 16)
            else:
                v = _literal(m.group(0), Span(fname, line, col, line, col + b - a))
            if v > 0xFFFFFFFF and (v | 0xFFFFFFFF) != M64:
                raise InputError(Span(fname, line, col, line, col + b - a),
                                 "Value out of range for 32-bit array element")
            flat.extend((off, 4, _K_CELL, line, col, line, col + b - a))
            out += (v & 0xFFFFFFFF).to_bytes(4, "big")
        else:
            markers.append((off, MK_PHANDLE, m.group(2) or m.group(3), None))
            flat.extend((off, 4, _K_REF, line, col, line, col + b - a))
            out += b"\xff\xff\xff\xff"
    return end_list + 1


# A long one-line list of plain numbers (a table of 10^7 cells) is taken in bulk: the
# numbers by int() over the split words, the pieces' ints by array slices, all at C
# speed; the bytes and pieces are exactly those of the loop in _cells_into.
_BULK_MIN = 256
_BULK_CHUNK = 1 << 16
_PLAIN_LIST = re.compile(r"(?>[ \t\n\r\f\v]*+(?>[1-9][0-9]{0,8}+|0[xX][0-9a-fA-F]{1,8}+|0)"
                         r"(?![0-9a-zA-Z_&]))*+[ \t\n\r\f\v]*+")
_WORD = re.compile(r"[^ \t\n\r\f\v]+")
_INT0 = partial(int, base=0)


def _bulk_cells(text: str, base: int, end: int, line0: int, cb: int, out: bytearray,
                flat: array[int]) -> bool:
    """`_cells_into` for a list whose every element is a decimal of at most 9 digits or
    a hex of at most 8 (so each fits in 32 bits); False (nothing done) otherwise."""
    if _PLAIN_LIST.fullmatch(text, base + 1, end) is None:
        return False
    found = _WORD.finditer(text, base + 1, end)
    while True:  # in chunks: no list of 10^7 words is ever held
        ms = list(islice(found, _BULK_CHUNK))
        n = len(ms)
        if not n:
            return True
        words = [m.group() for m in ms]
        cells = array("I", map(_INT0, words))
        if sys.byteorder == "little":
            cells.byteswap()
        off0 = len(out)
        cols = array("i", [m.start() + cb for m in ms])
        del ms
        block = array("i", bytes(_PIECE_INTS * 4 * n))
        block[0::_PIECE_INTS] = array("i", range(off0, off0 + 4 * n, 4))
        block[1::_PIECE_INTS] = array("i", [4]) * n
        block[2::_PIECE_INTS] = array("i", [_K_CELL]) * n
        block[3::_PIECE_INTS] = block[5::_PIECE_INTS] = array("i", [line0]) * n
        block[4::_PIECE_INTS] = cols
        block[6::_PIECE_INTS] = array("i", map(add, cols, map(len, words)))
        out += cells.tobytes()
        flat.extend(block)


def _statement(ctx: _Ctx, tok: Token) -> LProp:
    """A PROPSTMT token."""
    text, fname, line, col = _tok_pos(ctx, tok)
    eol = text.find("\n")
    return _stmt(ctx, text, 0, len(text) if eol < 0 else eol, fname, line, col)[0]


def _stmt(ctx: _Ctx, text: str, i: int, eol: int, fname: str, line0: int, c0: int
          ) -> tuple[LProp, int]:
    """The whole `name = value, value;` statement at text[i], which is at line0, column
    c0 (each value a string, a plain `< >` list or a `[ ]` byte string, as the PROPSTMT
    regex has checked), built as prop_assign would build it. eol is the index of the
    first newline from i on (or the length of text). Returns the property and the index
    past the whitespace after the statement."""
    start = i
    eq = text.index("=", i)
    name = text[i:eq].rstrip(_SPACE)
    name = intern(name[1:] if name[0] == "\\" else name)
    try:  # piece ints as in _simple_cells: an int array, or a list past 32 bits
        return _stmt_value(ctx, text, start, eq, eol, fname, line0, c0, name, array("i"))
    except OverflowError:
        return _stmt_value(ctx, text, start, eq, eol, fname, line0, c0, name, [])


def _stmt_value(ctx: _Ctx, text: str, start: int, eq: int, eol: int, fname: str,
                line0: int, c0: int, name: str, flat: array[int] | list[int]
                ) -> tuple[LProp, int]:
    """`_stmt` past the name, its piece ints into `flat`."""
    cb = c0 - start  # column of offset k on line0: cb + k
    pos: _Pos | None = None  # for offsets past eol
    out = bytearray()
    markers: list[Marker] = []
    i = eq + 1
    while True:
        while text[i] in _SPACE:
            i += 1
        ch = text[i]
        if ch == "<":
            if text.index(">", i) > eol and pos is None:
                pos = _Pos(text, start, line0, c0)
            i = _cells_into(text, i, fname, line0, cb, pos, out, markers, flat)
        else:
            end = (_STRING.match(text, i).end()  # type: ignore[union-attr]
                   if ch == '"' else text.index("]", i) + 1)
            if end <= eol:
                sp = (line0, cb + i, line0, cb + end)
            else:
                if pos is None:
                    pos = _Pos(text, start, line0, c0)
                sp = pos.span_ints(i, end)
            if ch == '"':
                data = _strdata(text, i, end, fname, sp)
                flat.extend((len(out), len(data), _K_STRING, *sp))
            else:
                data = bytes.fromhex("".join(text[i + 1 : end - 1].split()))
                flat.extend((len(out), len(data), _K_BYTES, *sp))
            out += data
            i = end
        while text[i] in _SPACE:
            i += 1
        if text[i] == ";":
            break
        i += 1  # the comma
    if i < eol:
        span = (line0, c0, line0, cb + i + 1)
    else:
        if pos is None:
            pos = _Pos(text, start, line0, c0)
        span = pos.span_ints(start, i + 1)
    value = bytes(out)
    if len(value) <= 32 and not markers:
        # short values ("okay", `<1>`) repeat across thousands of nodes: one copy each
        value = ctx.strings.setdefault(value, value)
    i += 1
    n = len(text)
    while i < n and text[i] in _SPACE:
        i += 1
    # the span folded into the packed pieces: no Span or Piece object is made
    packed = pack_flat(fname, flat, span)
    if packed is None:  # a number beyond 32 bits (a huge file): the plain objects
        return LProp(name, value, Span(fname, *span), markers, flat_pieces(fname, flat)), i
    return LProp(name, value, None, markers, packed), i


def _node_head(ctx: _Ctx, tok: Token) -> tuple[LNode, str, int, int, int]:
    """A NODEOPEN / NODELEAF token's node: its labels, name and the properties written
    in the token. Returns the node (its span ends where it starts, for the caller to
    complete), the text and where the rest of it begins (index, line, column)."""
    text, fname, line0, col0 = _tok_pos(ctx, tok)
    brace = text.index("{")
    lc = text.rfind(":", 0, brace)
    labels: list[str] = []
    ns = 0
    if lc >= 0:
        ns = lc + 1
        while text[ns] in _SPACE:
            ns += 1
        labels = text[:lc].split(":")
    name = text[ns:brace].rstrip(_SPACE)
    if name[0] == "\\":
        name = name[1:]
    nl = text.count("\n", 0, ns)
    if nl:
        line, col = line0 + nl, ns - text.rfind("\n", 0, ns)
    else:
        line, col = line0, col0 + ns
    node = LNode(name, Span(fname, line, col))
    # innermost label first, as `labelled` reduces
    for lab in reversed(labels):
        add_label(node, lab.strip(_SPACE))
    i = brace + 1
    n = len(text)
    while i < n and text[i] in _SPACE:
        i += 1
    nl = text.count("\n", ns, i)
    if nl:
        line, col = line + nl, i - text.rfind("\n", ns, i)
    else:
        col += i - ns
    # the rest of the token: whole statements (the regex checked them), then `};` or
    # nothing
    eol = -1
    while i < n and text[i] != "}":
        if eol < i:  # (found once per line: a long one-line node stays linear)
            eol = text.find("\n", i)
            if eol < 0:
                eol = n
        prop, e = _stmt(ctx, text, i, eol, fname, line, col)
        node.add_prop(prop)
        nl = text.count("\n", i, e)
        if nl:
            line, col = line + nl, e - text.rfind("\n", i, e)
        else:
            col += e - i
        i = e
    return node, text, i, line, col


def _on_nodeopen(ctx: _Ctx, tok: Token) -> Token:
    """A NODEOPEN token that also holds its node's `};` is a whole leaf node."""
    s = tok.rstrip(_SPACE)
    if s[-1] == ";" and s[:-1].rstrip(" \t")[-1] == "}":
        tok.type = "NODELEAF"
        if ctx.depth >= MAX_NODE_DEPTH:  # opened and closed: one level, briefly
            _on_open(ctx, tok)
        return tok
    return _on_open(ctx, tok)


_STRING = re.compile(r'"[^"\\]*+(?:\\.[^"\\]*+)*+"')


def _strdata(text: str, a: int, b: int, fname: str, sp: tuple[int, int, int, int]) -> bytes:
    """The value of the string literal text[a:b] (quotes included), with its NUL; sp
    is where it is (line, column, end line, end column in fname)."""
    if "\\" not in text[a:b]:
        return text[a + 1 : b - 1].encode("latin-1") + b"\0"
    return _unescape(text[a:b], 1, b - a - 1, Span(fname, *sp)) + b"\0"


_REF_KIND = PieceKind.REF


class _Builder(Transformer[Token, Any]):
    """Inline transformer: builds dtc's nodes and properties as the parser reduces
    (one per parse, holding that parse's _Ctx)."""

    def __init__(self, ctx: _Ctx) -> None:
        super().__init__()
        self.ctx = ctx

    # ---- header, memreserve ----
    def header_v1(self, c: list[Token]) -> None:
        self._header(c[0], 1)

    def header_plugin(self, c: list[Token]) -> None:
        self._header(c[0], 3)

    def _header(self, tok: Token, flags: int) -> None:
        ctx = self.ctx
        if ctx.header_flags is None:
            ctx.header_flags = flags
            ctx.resolver.plugin = bool(flags & 2)
        elif ctx.header_flags != flags:
            raise InputError(ctx.tspan(tok), "Header flags don't match earlier ones")

    def mprim(self, c: list[Any]) -> tuple[int, Token, Token]:
        t = c[0]
        if len(c) == 3:
            return c[1], t, c[2]
        return (_number(self.ctx, t) if t.type == "NUMBER" else _char(self.ctx, t)), t, t

    def memreserve(self, c: list[Any]) -> None:
        ctx = self.ctx
        labels = tuple(_lab(t) for t in c[:-4])
        kw = c[-4]
        addr, size = c[-3][0], c[-2][0]
        ctx.resolver.memreserves.append(
            MemReserve(addr, size, ctx.span(c[0] if labels else kw, c[-1]), labels)
        )

    # ---- expressions ----
    def e_num(self, c: list[Token]) -> int:
        return _number(self.ctx, c[0])

    def e_char(self, c: list[Token]) -> int:
        return _char(self.ctx, c[0])

    def e_paren(self, c: list[Any]) -> int:
        v: int = c[1]
        return v

    def binop(self, c: list[Any]) -> int:
        op: Token = c[1]
        try:
            v = _BIN[op.type](c[0], c[2])
        except ZeroDivisionError:
            raise InputError(self.ctx.tspan(op), "Division by zero") from None
        return v

    def unop(self, c: list[Any]) -> int:
        t = c[0].type
        v: int = c[1]
        if t == "MINUS":
            return (-v) & M64
        if t == "TILDE":
            return v ^ M64
        return int(v == 0)

    def ternop(self, c: list[Any]) -> int:
        v: int = c[2] if c[0] else c[4]
        return v

    def paren(self, c: list[Any]) -> tuple[int, Token, Token]:
        return c[1], c[0], c[2]

    # ---- values ----
    def cells(self, c: list[Any]) -> tuple[str, bytes, list[Marker], Pieces, Token, Token]:
        ctx = self.ctx
        if len(c) == 1:
            return _simple_cells(ctx, c[0])
        name = ctx.name
        single = ctx.single
        span = ctx.span
        first = c[0]
        if first.type == "BITS":
            bits = _number(self.ctx, c[1])
            if bits not in (8, 16, 32, 64):
                raise InputError(ctx.tspan(c[1]), "Array elements must be 8, 16, 32 or 64-bits")
            elems = c[3] if len(c) == 5 else ()
        else:
            bits = 32
            elems = c[1] if len(c) == 3 else ()
        size = bits // 8
        mask = (1 << bits) - 1
        out = bytearray()
        markers: list[Marker] = []
        pieces: list[Piece] = []
        for e in elems:
            if type(e) is tuple:
                v, a, b = e
                sp = span(a, b)
            else:
                tt = e.type
                if tt == "NUMBER":
                    v = _number(self.ctx, e)
                elif tt == "LABEL":
                    markers.append((len(out), MK_LABEL, _lab(e), ctx.tspan(e)))
                    continue
                elif tt == "CHAR":
                    v = _char(self.ctx, e)
                else:  # REF / PATHREF: a phandle cell
                    sp = ctx.tspan(e)
                    if bits != 32:
                        raise InputError(sp, "References are only allowed in arrays with "
                                             "32-bit elements.")
                    target = str(e)[1:] if tt == "REF" else str(e)[2:-1]
                    off = len(out)
                    markers.append((off, MK_PHANDLE, target, sp))
                    pieces.append(Piece(off, 4, _REF_KIND, sp))
                    out += b"\xff\xff\xff\xff"
                    continue
                if single:
                    sp = Span(name, e.line, e.column, e.end_line, e.end_column)
                else:
                    sp = span(e, e)
            if v > mask and (v | mask) != M64:
                raise InputError(sp, f"Value out of range for {bits}-bit array element")
            pieces.append(Piece(len(out), size, _CELL_KIND, sp))
            out += (v & mask).to_bytes(size, "big")
        return "c", bytes(out), markers, pack_pieces(pieces), first, c[-1]

    def bytestring(self, c: list[Token]) -> tuple[str, bytes, list[Marker], Pieces,
                                                    Token, Token]:
        ctx = self.ctx
        out = bytearray()
        markers: list[Marker] = []
        for t in c[1:-1]:
            if t.type == "HEXBYTE":
                out.append(int(t, 16))
            else:
                markers.append((len(out), MK_LABEL, _lab(t), ctx.tspan(t)))
        sp = ctx.span(c[0], c[-1])
        return "b", bytes(out), markers, [Piece(0, len(out), PieceKind.BYTES, sp)], c[0], c[-1]

    def incbin(self, c: list[Any]) -> tuple[str, bytes, list[Marker], Pieces, Token, Token]:
        ctx = self.ctx
        kw: Token = c[0]
        at = ctx.span(kw, c[-1])
        fname = _string(self.ctx, c[2])[:-1].decode("latin-1")
        _, _, cur_dir = ctx.where(kw.line)  # type: ignore[arg-type]
        part = (c[4][0], c[6][0]) if len(c) > 4 else None
        _, data = ctx.open_file(fname, cur_dir, at, part)
        return "i", data, [], [Piece(0, len(data), PieceKind.BYTES, at)], kw, c[-1]

    # ---- lists (explicit left recursion: cheaper than lark's star helpers) ----
    def list_first(self, c: list[Any]) -> list[Any]:
        return c

    def list_more(self, c: list[Any]) -> list[Any]:
        lst: list[Any] = c[0]
        lst.append(c[1])
        return lst

    # ---- properties ----
    def prop_stmt(self, c: list[Token]) -> LProp:
        return _statement(self.ctx, c[0])

    prop_str_stmt = prop_cells_stmt = prop_stmt  # the base grammar's two kinds

    def prop_string(self, c: list[Token]) -> LProp:
        ctx = self.ctx
        e = c[2]
        data = _string(self.ctx, e)
        return LProp(_pname(c[0]), data, ctx.span(c[0], c[3]), None,
                     [Piece(0, len(data), PieceKind.STRING, ctx.tspan(e))],
                     err_span=ctx.tspan(c[1]))

    def prop_cells(self, c: list[Any]) -> LProp:
        ctx = self.ctx
        e = c[2]
        return LProp(_pname(c[0]), e[1], ctx.span(c[0], c[3]), e[2], e[3],
                     err_span=ctx.tspan(c[1]))

    def prop_assign(self, c: list[Any]) -> LProp:
        ctx = self.ctx
        name_tok: Token = c[0]
        semi: Token = c[-1]
        elems = c[2]
        if len(elems) == 1:
            e = elems[0]
            if type(e) is tuple:
                return LProp(_pname(name_tok), e[1], ctx.span(name_tok, semi), e[2], e[3],
                             err_span=ctx.tspan(c[1]))
            if e.type == "STRING":
                data = _string(self.ctx, e)
                return LProp(_pname(name_tok), data, ctx.span(name_tok, semi), None,
                             [Piece(0, len(data), PieceKind.STRING, ctx.tspan(e))],
                             err_span=ctx.tspan(c[1]))
        out = bytearray()
        markers: list[Marker] = []
        pieces: list[Piece] = []
        want_value = True
        for e in elems:
            off = len(out)
            if type(e) is tuple:
                if not want_value:
                    raise _syntax(self.ctx, e[4])
                out += e[1]
                for m in e[2]:
                    markers.append((m[0] + off, m[1], m[2], m[3]))
                for p in unpack_pieces(e[3]):
                    pieces.append(Piece(p.offset + off, p.size, p.kind, p.span))
                want_value = False
                continue
            tt = e.type
            if tt == "LABEL":
                markers.append((off, MK_LABEL, _lab(e), ctx.tspan(e)))
            elif tt == "COMMA":
                if want_value:
                    raise _syntax(self.ctx, e)
                want_value = True
            else:
                if not want_value:
                    raise _syntax(self.ctx, e)
                want_value = False
                sp = ctx.tspan(e)
                if tt == "STRING":
                    data = _string(self.ctx, e)
                    out += data
                    pieces.append(Piece(off, len(data), PieceKind.STRING, sp))
                else:  # a reference outside cells: the target's path, filled in later
                    target = str(e)[1:] if tt == "REF" else str(e)[2:-1]
                    markers.append((off, MK_PATH, target, sp))
                    pieces.append(Piece(off, 0, PieceKind.PATH, sp))
        if want_value:
            raise _syntax(self.ctx, semi)
        return LProp(_pname(name_tok), bytes(out), ctx.span(name_tok, semi), markers, pieces,
                     err_span=ctx.tspan(c[1]))

    def prop_empty(self, c: list[Token]) -> LProp:
        ctx = self.ctx
        return LProp(_pname(c[0]), b"", ctx.span(c[0], c[1]), err_span=ctx.tspan(c[1]))

    def prop_del(self, c: list[Token]) -> LProp:
        ctx = self.ctx
        return LProp(_pname(c[1]), b"", ctx.span(c[0], c[2]), deleted=True,
                     err_span=ctx.tspan(c[0]))

    # ---- nodes ----
    def nodedef(self, c: list[Any]) -> LNode:
        ctx = self.ctx
        node = LNode("", ctx.span(c[0], c[-1]))
        if type(c[1]) is list:
            _fill(node, c[1])
        return node

    def subnode_open(self, c: list[Any]) -> LNode:
        """A NODEOPEN token (`a: b: name { x = <1>;`), the body, and the closing tokens."""
        ctx = self.ctx
        node = _node_head(ctx, c[0])[0]
        if type(c[1]) is list:
            _fill(node, c[1])
        eline, ecol = _end(ctx, c[-1])
        sp = node.span
        node.span = Span(sp.file, sp.line, sp.column, eline, ecol)
        return node

    def subnode_leaf(self, c: list[Token]) -> LNode:
        """A NODELEAF token: a whole node of plain statements, `name { x = <1>; };`."""
        node, text, i, line, col = _node_head(self.ctx, c[0])
        # text[i] is the `}`; the `;` is on its line
        sp = node.span
        node.span = Span(sp.file, sp.line, sp.column, line, col + text.index(";", i) - i + 1)
        return node

    def subnode(self, c: list[Any]) -> LNode:
        node: LNode = c[1]
        tok: Token = c[0]
        node.name = _nname(tok)
        sp = node.span
        if self.ctx.single:
            node.span = Span(sp.file, tok.line, tok.column, sp.end_line, sp.end_column)  # type: ignore[arg-type]
        else:
            f, line, _ = self.ctx.where(tok.line)  # type: ignore[arg-type]
            node.span = Span(f, line, tok.column, sp.end_line, sp.end_column)  # type: ignore[arg-type]
        return node

    def subnode_del(self, c: list[Token]) -> LNode:
        node = LNode(_nname(c[1]), self.ctx.span(c[0], c[2]))
        node.deleted = True
        return node

    def labelled(self, c: list[Any]) -> LNode | LProp:
        item: LNode | LProp = c[1]
        add_label(item, _lab(c[0]))
        return item

    def omitted(self, c: list[Any]) -> LNode:
        item = c[1]
        if type(item) is LProp:
            # dtc's parser fails at the token after the name (a whole-statement token
            # has no such position: its start stands in)
            raise InputError(item.err_span or item.span, "syntax error")
        item.omit = True
        node: LNode = item
        return node

    # ---- top level ----
    def root_def(self, c: list[Any]) -> None:
        node: LNode = c[1]
        sp = node.span
        tok: Token = c[0]
        node.span = self.ctx.span(tok, tok)
        node.span = Span(node.span.file, node.span.line, node.span.column, sp.end_line,
                         sp.end_column)
        self.ctx.resolver.root_def(node)

    def first_ref_def(self, c: list[Any]) -> None:
        ctx = self.ctx
        ref: Token = c[0]
        ctx.resolver.first_ref_def(_refname(ref), ctx.tspan(ref), c[1])

    def ref_def(self, c: list[Any]) -> None:
        ctx = self.ctx
        ref: Token = c[0]
        node: LNode = c[1]
        node.span = _join(ctx.tspan(ref), node.span)
        ctx.resolver.ref_def(_refname(ref), ctx.tspan(ref), node, None)

    def label_ref_def(self, c: list[Any]) -> None:
        ctx = self.ctx
        ref: Token = c[1]
        node: LNode = c[2]
        node.span = _join(ctx.tspan(c[0]), node.span)
        ctx.resolver.ref_def(_refname(ref), ctx.tspan(ref), node, _lab(c[0]))

    def del_ref(self, c: list[Token]) -> None:
        ctx = self.ctx
        ctx.resolver.del_ref(_refname(c[1]), ctx.tspan(c[1]))

    def omit_ref(self, c: list[Token]) -> None:
        ctx = self.ctx
        ctx.resolver.omit_ref(_refname(c[1]), ctx.tspan(c[1]))

    def start(self, c: list[Any]) -> None:
        return None


def _fill(node: LNode, items: list[LNode | LProp]) -> None:
    """A node body: properties, then subnodes (dtc's parser rejects the other order)."""
    seen_child = False
    for it in items:
        if type(it) is LProp:
            if seen_child:
                raise InputError(it.span, "Properties must precede subnodes")
            node.add_prop(it)
        else:
            seen_child = True
            node.add_child(it)  # type: ignore[arg-type]


def _end(ctx: _Ctx, b: Token) -> tuple[int, int]:
    """Real line and column just past token b (whitespace after it excluded)."""
    if b[-1] in _SPACE:
        # tokens that carry trailing whitespace have no newline before it
        eline: int = b.line  # type: ignore[assignment]
        ecol: int = b.column + len(b.rstrip(_SPACE))  # type: ignore[operator]
    else:
        eline = b.end_line  # type: ignore[assignment]
        ecol = b.end_column  # type: ignore[assignment]
    if not ctx.single:
        _, eline, _ = ctx.where(eline)
    return eline, ecol


def _pname(tok: Token) -> str:
    s = str(tok).rstrip(_SPACE)
    # property names repeat across thousands of nodes: one copy of each
    return intern(s[1:] if s[0] == "\\" else s)


def _nname(tok: Token) -> str:
    """A node name (mostly unique, so not interned)."""
    s = str(tok).rstrip(_SPACE)
    return s[1:] if s[0] == "\\" else s


def _lab(tok: Token) -> str:
    """A LABEL token's name (the token also holds the colon and the whitespace after)."""
    return str(tok).rstrip(_SPACE)[:-1]


def _refname(tok: Token) -> str:
    s = str(tok)
    return s[2:-1] if tok.type == "PATHREF" else s[1:]


def _join(a: Span, b: Span) -> Span:
    return Span(a.file, a.line, a.column, b.end_line, b.end_column)


_LEXER_CALLBACKS: dict[str, Callable[[_Ctx, Token], Token]] = {
    "INCLUDE": _on_include, "LINEMARKER": _on_linemarker, "CHAR": _on_char,
    "NODEOPEN": _on_nodeopen, "LBRACE": _on_open, "RBRACE": _on_close,
    "NODECLOSE": _on_close, "LPAR": _on_lpar, "RPAR": _on_rpar,
}



_GRAMMAR = Path(__file__).with_name("dts.lark")


def _grammar(fast: bool) -> str:
    """dts.lark for the fast parser (lines tagged `//@base` dropped) or the base one
    (lines tagged `//@fast` dropped)."""
    lines = _GRAMMAR.read_text().splitlines()
    drop = "//@base" if fast else "//@fast"
    return "\n".join(ln for ln in lines if not ln.rstrip().endswith(drop))


class _Grammar:
    """One grammar's lark machinery, shared by every parse and never changed by one:
    the LALR table, the rules' tree builder and the contextual lexer's per-state
    lexers. Each parse binds its own _Builder and lexer callbacks to them (`parse`):
    no parse state lives here, so parses need no lock."""

    def __init__(self, fast: bool) -> None:
        lark = Lark(
            _grammar(fast),
            parser="lalr",
            lexer="contextual",
            maybe_placeholders=False,
            # lark keeps its parse tables in the system temp dir (never the source
            # tree), keyed by the grammar text: about 60 ms less per process
            cache=True,
        )
        frontend: Any = lark.parser
        self._tree_builder: Any = getattr(lark, "_parse_tree_builder")  # noqa: B009
        self._table = frontend.parser.parser.parse_table
        self._lexers: dict[int, BasicLexer] = frontend.lexer.lexers
        (self._start,) = frontend.parser_conf.start

    def parse(self, ctx: _Ctx, text: str) -> None:
        """Parse `text`, building into ctx.resolver."""
        callbacks = self._tree_builder.create_callback(_Builder(ctx))
        thread = LexerThread.from_text(_Lexer(self._lexers, ctx), text)  # type: ignore[arg-type]
        _Parser(self._table, callbacks).parse(thread, self._start)


_GRAMMARS: dict[bool, _Grammar] = {}  # built once each, read-only after


def _parser(fast: bool = True) -> _Grammar:
    """The fast grammar parses; the base one only re-parses inputs the fast one rejects."""
    g = _GRAMMARS.get(fast)
    if g is None:
        g = _GRAMMARS[fast] = _Grammar(fast)
    return g


def parse_dts(
    data: bytes,
    name: str,
    *,
    cpp: bool = False,
    include_dirs: Sequence[str | os.PathLike[str]] = (),
    symbols: bool = False,
) -> Tree:
    """Compile DTS source as `dtc -I dts -O dtb [-@]` would, into a resolved Tree.

    Raises InputError (one line, with file:line:col) wherever dtc reports an error.
    """
    return parse_dts_owned([data], name, cpp=cpp, include_dirs=include_dirs, symbols=symbols)


def parse_dts_owned(
    box: list[bytes],
    name: str,
    *,
    cpp: bool = False,
    include_dirs: Sequence[str | os.PathLike[str]] = (),
    symbols: bool = False,
) -> Tree:
    """`parse_dts` on the one source in `box`, which it takes out: if the caller kept
    no other reference, the bytes are freed as soon as they are decoded."""
    data = box.pop()
    dirs = [os.fspath(d) for d in include_dirs]
    main_dir: str | None = os.path.dirname(name) or None
    if cpp:
        # only with --cpp: the runner (subprocess, shutil) is 4-13 ms (python -X importtime)
        from .cpp import run_cpp

        data = run_cpp(data, name, dirs)
    text = data.decode("latin-1")
    size = len(data)
    del data
    gc_was = gc.isenabled()
    gc.disable()
    try:
        try:
            ctx = _parse(_parser(True), text, name, dirs, main_dir, symbols)
        except InputError:
            # The shortcut tokens move token boundaries, and with them which token
            # (or character) a syntax error names. Errors are rare: the base grammar
            # parses the input again and reports dtc's boundaries.
            ctx = _parse(_parser(False), text, name, dirs, main_dir, symbols)
        del text  # 1 byte a character of input: not needed past the parse
        resolver = ctx.resolver
        if resolver.root is None:  # pragma: no cover - the grammar requires a root
            raise InputError(Span(name, 1, 1), "no root node")
        tree = resolver.finish()
        tree.sources = tuple(ctx.sources)
        if size > _FREEZE_BYTES:
            # Millions of live objects: without this, every later full collection
            # (and the one at exit) rescans them all, which costs more than the
            # parse itself on 100k-channel trees. gc.unfreeze() undoes it.
            gc.freeze()
        return tree
    finally:
        if gc_was:
            gc.enable()


def _parse(parser: _Grammar, text: str, name: str, dirs: list[str], main_dir: str | None,
           symbols: bool) -> _Ctx:
    """One parse of `text` into a fresh context and Resolver; every failure as an
    InputError."""
    ctx = _Ctx(name, text, dirs, main_dir, Resolver(name, symbols=symbols))
    try:
        parser.parse(ctx, text)
        return ctx
    except UnexpectedToken as e:
        raise _token_error(ctx, e) from None
    except UnexpectedInput as e:
        f, line, _ = ctx.where(getattr(e, "line", 1) or 1)
        raise InputError(Span(f, line, getattr(e, "column", 1) or 1), "syntax error") \
            from None
    except RecursionError:  # pragma: no cover - nothing here recurses on input depth
        raise InputError(Span(name, 1, 1), "input nested too deeply") from None


def _token_error(ctx: _Ctx, e: UnexpectedToken) -> InputError:
    tok = e.token
    if tok.type == "$END":
        f, real, _ = ctx.where(tok.line or 1)
        return InputError(Span(f, real, tok.column or 1), "syntax error: unexpected end of input")
    return InputError(ctx.tspan(tok), f"syntax error (unexpected {str(tok).rstrip(_SPACE)!r})")
