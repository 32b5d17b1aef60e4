"""The inline transformer: dtc's parser actions, building nodes and properties as the
LALR parser reduces (one `Builder` per parse, holding its ParseContext), and handing
each top-level statement to the Resolver at once, as dtc applies them."""

from __future__ import annotations

from collections.abc import Callable
from sys import intern
from typing import Any

from lark import Token, Transformer

from .context import SPACE, ParseContext, end_of
from .errors import InputError, Span
from .literals import M64, char_value, number_value, string_value, syntax_error
from .shortcuts import node_head, simple_cells, statement
from .tree import MemReserve, Piece, PieceKind, Pieces, pack_pieces, unpack_pieces
from .worktree import MK_LABEL, MK_PATH, MK_PHANDLE, LNode, LProp, Marker, add_label

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
_REF_KIND = PieceKind.REF


class Builder(Transformer[Token, Any]):
    """Inline transformer: builds dtc's nodes and properties as the parser reduces
    (one per parse, holding that parse's ParseContext)."""

    def __init__(self, ctx: ParseContext) -> None:
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
        return (number_value(self.ctx, t) if t.type == "NUMBER" else char_value(self.ctx, t)), t, t

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
        return number_value(self.ctx, c[0])

    def e_char(self, c: list[Token]) -> int:
        return char_value(self.ctx, c[0])

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
            return simple_cells(ctx, c[0])
        name = ctx.name
        single = ctx.single
        span = ctx.span
        first = c[0]
        if first.type == "BITS":
            bits = number_value(self.ctx, c[1])
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
                    v = number_value(self.ctx, e)
                elif tt == "LABEL":
                    markers.append((len(out), MK_LABEL, _lab(e), ctx.tspan(e)))
                    continue
                elif tt == "CHAR":
                    v = char_value(self.ctx, e)
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
        return "c", bytes(out), markers, pack_pieces(pieces, ctx.files), first, c[-1]

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
        fname = string_value(self.ctx, c[2])[:-1].decode("latin-1")
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
        return statement(self.ctx, c[0])

    prop_str_stmt = prop_cells_stmt = prop_stmt  # the base grammar's two kinds

    def prop_string(self, c: list[Token]) -> LProp:
        ctx = self.ctx
        e = c[2]
        data = string_value(self.ctx, e)
        return LProp(_pname(c[0]), data, ctx.span(c[0], c[3]), None,
                     [Piece(0, len(data), PieceKind.STRING, ctx.tspan(e))],
                     err_span=ctx.tspan(c[1]))

    def prop_cells(self, c: list[Any]) -> LProp:
        ctx = self.ctx
        e = c[2]
        return LProp(_pname(c[0]), e[1], ctx.span(c[0], c[3]), e[2], e[3],
                     err_span=ctx.tspan(c[1]), files=ctx.files)

    def prop_assign(self, c: list[Any]) -> LProp:
        ctx = self.ctx
        name_tok: Token = c[0]
        semi: Token = c[-1]
        elems = c[2]
        if len(elems) == 1:
            e = elems[0]
            if type(e) is tuple:
                return LProp(_pname(name_tok), e[1], ctx.span(name_tok, semi), e[2], e[3],
                             err_span=ctx.tspan(c[1]), files=ctx.files)
            if e.type == "STRING":
                data = string_value(self.ctx, e)
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
                    raise syntax_error(self.ctx, e[4])
                out += e[1]
                for m in e[2]:
                    markers.append((m[0] + off, m[1], m[2], m[3]))
                for p in unpack_pieces(e[3], ctx.files):
                    pieces.append(Piece(p.offset + off, p.size, p.kind, p.span))
                want_value = False
                continue
            tt = e.type
            if tt == "LABEL":
                markers.append((off, MK_LABEL, _lab(e), ctx.tspan(e)))
            elif tt == "COMMA":
                if want_value:
                    raise syntax_error(self.ctx, e)
                want_value = True
            else:
                if not want_value:
                    raise syntax_error(self.ctx, e)
                want_value = False
                sp = ctx.tspan(e)
                if tt == "STRING":
                    data = string_value(self.ctx, e)
                    out += data
                    pieces.append(Piece(off, len(data), PieceKind.STRING, sp))
                else:  # a reference outside cells: the target's path, filled in later
                    target = str(e)[1:] if tt == "REF" else str(e)[2:-1]
                    markers.append((off, MK_PATH, target, sp))
                    pieces.append(Piece(off, 0, PieceKind.PATH, sp))
        if want_value:
            raise syntax_error(self.ctx, semi)
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
        node = node_head(ctx, c[0])[0]
        if type(c[1]) is list:
            _fill(node, c[1])
        eline, ecol = end_of(ctx, c[-1])
        sp = node.span
        node.span = Span(sp.file, sp.line, sp.column, eline, ecol)
        return node

    def subnode_leaf(self, c: list[Token]) -> LNode:
        """A NODELEAF token: a whole node of plain statements, `name { x = <1>; };`."""
        node, text, i, line, col = node_head(self.ctx, c[0])
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



def _pname(tok: Token) -> str:
    s = str(tok).rstrip(SPACE)
    # property names repeat across thousands of nodes: one copy of each
    return intern(s[1:] if s[0] == "\\" else s)


def _nname(tok: Token) -> str:
    """A node name (mostly unique, so not interned)."""
    s = str(tok).rstrip(SPACE)
    return s[1:] if s[0] == "\\" else s


def _lab(tok: Token) -> str:
    """A LABEL token's name (the token also holds the colon and the whitespace after)."""
    return str(tok).rstrip(SPACE)[:-1]


def _refname(tok: Token) -> str:
    s = str(tok)
    return s[2:-1] if tok.type == "PATHREF" else s[1:]


def _join(a: Span, b: Span) -> Span:
    return Span(a.file, a.line, a.column, b.end_line, b.end_column)
