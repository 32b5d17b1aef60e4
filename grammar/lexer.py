"""The lexer: lark's contextual lexers, bound to one parse, plus what dtc does at the
lexer level.

`/include/` switches to another buffer (`Lexer` keeps a stack of buffers, each with its
own virtual line range in the ParseContext), cpp line markers (`# 12 "file.dtsi" 1`)
remap positions, character literals are checked as they are lexed, and `{` / `(` are
counted against dtc's parser-stack limits. lark's compiled lexers are shared by every
parse and never written: each parse copies the few it meets with its callbacks bound.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from copy import copy
from functools import partial
from typing import Any

from lark import Token
from lark.exceptions import UnexpectedCharacters
from lark.lexer import BasicLexer, LexerState
from lark.utils import TextSlice

from .context import SPACE, ParseContext
from .errors import InputError, Span
from .literals import INT_MAX, char_value, unescape

MAX_INCLUDE_DEPTH = 200  # dtc's MAX_SRCFILE_DEPTH
# dtc's bison stack holds 10,000 entries and each open node takes 3 (name, `{`, its
# properties), so dtc accepts at most 3,330 nested levels below the root ("memory
# exhausted" past that); deeper text is refused here too, at the `{` that passes it.
MAX_NODE_DEPTH = 3331  # open braces, the root's included
# The same stack holds one entry per open `(`: dtc fails at the 9,990th in a cell.
# (Its exact limits shift a little with what else is open; these are its maxima, so
# whatever dtc accepts is accepted here.)
MAX_PAREN_DEPTH = 9989


class _Include(Exception):
    """Raised by the INCLUDE lexer callback: the lexer loop switches buffers."""

    def __init__(self, tok: Token) -> None:
        super().__init__()
        self.tok = tok


# ---- lexer callbacks (bound to one parse's ParseContext by _Lexers) ----

def _on_linemarker(ctx: ParseContext, tok: Token) -> Token:
    text = str(tok)
    q1 = text.index('"')
    q2 = text.rindex('"')
    digits = text[1:q1].replace("line", "").split()
    fname = unescape(text, q1 + 1, q2, None).decode("latin-1")
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


def _on_open(ctx: ParseContext, tok: Token) -> Token:
    """A `{` (alone, or in a NODEOPEN token): one level deeper, within dtc's limit."""
    ctx.depth += 1
    if ctx.depth > MAX_NODE_DEPTH:
        raise InputError(ctx.tspan(tok), f"nodes nested too deeply (more than "
                         f"{MAX_NODE_DEPTH - 1} levels below the root, where dtc's parser "
                         "runs out of stack)")
    return tok


def _on_close(ctx: ParseContext, tok: Token) -> Token:
    ctx.depth -= 1
    return tok


def _on_lpar(ctx: ParseContext, tok: Token) -> Token:
    """A `(`: dtc's parser stack holds 9,989 of them at most."""
    ctx.parens += 1
    if ctx.parens > MAX_PAREN_DEPTH:
        raise InputError(ctx.tspan(tok), f"parentheses nested too deeply (more than "
                         f"{MAX_PAREN_DEPTH}, where dtc's parser runs out of stack)")
    return tok


def _on_rpar(ctx: ParseContext, tok: Token) -> Token:
    ctx.parens -= 1
    return tok


def _on_char(ctx: ParseContext, tok: Token) -> Token:
    """Character literals are checked when lexed, as dtc's lexer does."""
    char_value(ctx, tok)
    return tok


def _on_include(ctx: ParseContext, tok: Token) -> Token:
    raise _Include(tok)


class _Lexers(dict[int, BasicLexer]):
    """One parse's lexer for each parser state: lark's shared one for that state
    (its compiled scanner read-only), copied with the callbacks bound to this parse's
    ParseContext. Made on first use: a parse meets a few of the 63 distinct lexers."""

    def __init__(self, shared: dict[int, BasicLexer], ctx: ParseContext) -> None:
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


class Lexer:
    """One parse's lexer: lark's contextual lexing plus dtc's buffer stack for
    `/include/`."""

    def __init__(self, shared: dict[int, BasicLexer], ctx: ParseContext) -> None:
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




def _on_nodeopen(ctx: ParseContext, tok: Token) -> Token:
    """A NODEOPEN token that also holds its node's `};` is a whole leaf node."""
    s = tok.rstrip(SPACE)
    if s[-1] == ";" and s[:-1].rstrip(" \t")[-1] == "}":
        tok.type = "NODELEAF"
        if ctx.depth >= MAX_NODE_DEPTH:  # opened and closed: one level, briefly
            _on_open(ctx, tok)
        return tok
    return _on_open(ctx, tok)



_LEXER_CALLBACKS: dict[str, Callable[[ParseContext, Token], Token]] = {
    "INCLUDE": _on_include, "LINEMARKER": _on_linemarker, "CHAR": _on_char,
    "NODEOPEN": _on_nodeopen, "LBRACE": _on_open, "RBRACE": _on_close,
    "NODECLOSE": _on_close, "LPAR": _on_lpar, "RPAR": _on_rpar,
}
