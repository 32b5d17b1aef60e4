"""The fast grammar's shortcut tokens taken apart: a whole `name = value;` statement
(PROPSTMT), a node's head with its leading statements (NODEOPEN), a whole leaf node
(NODELEAF), a plain `< >` list (SIMPLECELLS).

This is a second reader of the same syntax, on purpose: lark's cost is per token, and
these tokens cut the token count about tenfold on real trees. Each function builds
exactly what the base grammar's token-by-token rules build in builder.py (values,
markers, pieces, spans); tests/test_dts_shortcuts.py holds the two equal on every input,
and any syntax error re-parses with the base grammar, so these readers only ever see
text their token regexes (dts.lark) have already checked.
"""

from __future__ import annotations

import re
import sys
from array import array
from functools import partial
from itertools import islice
from operator import add
from sys import intern

from lark import Token

from .context import SPACE, ParseContext
from .errors import InputError, Span
from .literals import M64, integer_literal, unescape
from .tree import PIECE_KIND_INDEX, PieceKind, Pieces, flat_pieces, pack_flat
from .worktree import MK_PHANDLE, LNode, LProp, Marker, add_label

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


def _tok_pos(ctx: ParseContext, tok: Token) -> tuple[str, str, int, int]:
    """A token's text, real file, real line and column."""
    line: int = tok.line  # type: ignore[assignment]
    col: int = tok.column  # type: ignore[assignment]
    if ctx.single:
        return str(tok), ctx.name, line, col
    fname, line, _ = ctx.where(line)
    return str(tok), fname, line, col


def simple_cells(ctx: ParseContext, tok: Token
                 ) -> tuple[str, bytes, list[Marker], Pieces, Token, Token]:
    """A SIMPLECELLS token: a plain `< >` list of 32-bit numbers and references."""
    text, fname, line, col = _tok_pos(ctx, tok)
    # a newline in the trailing whitespace moves no position inside the token
    pos = _Pos(text, 0, line, col) if "\n" in text.rstrip(SPACE) else None
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
    packed = pack_flat(fname, flat, ctx.files)
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
                     else integer_literal(m.group(0), Span(fname, line, col, line, col + b - a)))
            elif 2 < len(digits) < 19 and digits[1] in "xX":  # the regex checked the digits
                v = int(digits, 16)
            else:
                v = integer_literal(m.group(0), Span(fname, line, col, line, col + b - a))
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


def statement(ctx: ParseContext, tok: Token) -> LProp:
    """A PROPSTMT token."""
    text, fname, line, col = _tok_pos(ctx, tok)
    eol = text.find("\n")
    return _stmt(ctx, text, 0, len(text) if eol < 0 else eol, fname, line, col)[0]


def _stmt(ctx: ParseContext, text: str, i: int, eol: int, fname: str, line0: int, c0: int
          ) -> tuple[LProp, int]:
    """The whole `name = value, value;` statement at text[i], which is at line0, column
    c0 (each value a string, a plain `< >` list or a `[ ]` byte string, as the PROPSTMT
    regex has checked), built as prop_assign would build it. eol is the index of the
    first newline from i on (or the length of text). Returns the property and the index
    past the whitespace after the statement."""
    start = i
    eq = text.index("=", i)
    name = text[i:eq].rstrip(SPACE)
    name = intern(name[1:] if name[0] == "\\" else name)
    try:  # piece ints as in simple_cells: an int array, or a list past 32 bits
        return _stmt_value(ctx, text, start, eq, eol, fname, line0, c0, name, array("i"))
    except OverflowError:
        return _stmt_value(ctx, text, start, eq, eol, fname, line0, c0, name, [])


def _stmt_value(ctx: ParseContext, text: str, start: int, eq: int, eol: int, fname: str,
                line0: int, c0: int, name: str, flat: array[int] | list[int]
                ) -> tuple[LProp, int]:
    """`_stmt` past the name, its piece ints into `flat`."""
    cb = c0 - start  # column of offset k on line0: cb + k
    pos: _Pos | None = None  # for offsets past eol
    out = bytearray()
    markers: list[Marker] = []
    i = eq + 1
    while True:
        while text[i] in SPACE:
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
        while text[i] in SPACE:
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
    while i < n and text[i] in SPACE:
        i += 1
    # the span folded into the packed pieces: no Span or Piece object is made
    packed = pack_flat(fname, flat, ctx.files, span)
    if packed is None:  # a number beyond 32 bits (a huge file): the plain objects
        return LProp(name, value, Span(fname, *span), markers, flat_pieces(fname, flat)), i
    return LProp(name, value, None, markers, packed, files=ctx.files), i


def node_head(ctx: ParseContext, tok: Token) -> tuple[LNode, str, int, int, int]:
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
        while text[ns] in SPACE:
            ns += 1
        labels = text[:lc].split(":")
    name = text[ns:brace].rstrip(SPACE)
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
        add_label(node, lab.strip(SPACE))
    i = brace + 1
    n = len(text)
    while i < n and text[i] in SPACE:
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




_STRING = re.compile(r'"[^"\\]*+(?:\\.[^"\\]*+)*+"')


def _strdata(text: str, a: int, b: int, fname: str, sp: tuple[int, int, int, int]) -> bytes:
    """The value of the string literal text[a:b] (quotes included), with its NUL; sp
    is where it is (line, column, end line, end column in fname)."""
    if "\\" not in text[a:b]:
        return text[a + 1 : b - 1].encode("latin-1") + b"\0"
    return unescape(text[a:b], 1, b - a - 1, Span(fname, *sp)) + b"\0"
