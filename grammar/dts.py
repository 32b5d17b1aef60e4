"""DTS text to a resolved `Tree`, as dtc 1.6.1 compiles it: the entry points and the
two grammars.

lark LALR with the contextual lexer and an inline transformer (the only configuration
fast enough: README.md's benchmark section has the figures). The front end is split by
job, each module taking the parse's `ParseContext`:

    context.py    one parse's state: positions, nesting counters, files read
    lexer.py      lark's lexers bound to the parse; /include/, line markers, limits
    literals.py   integers, characters and string escapes, as dtc reads them
    shortcuts.py  the fast grammar's whole-statement tokens taken apart
    builder.py    the parser actions (lark's inline transformer)
    resolve.py    dtc's tree semantics, applied statement by statement (then checks.py)

lark costs about the same per token whatever the token, so the fast grammar lexes whole
statements and whole leaf nodes as single tokens (PROPSTMT, NODEOPEN, NODELEAF,
NODECLOSE: see dts.lark) and shortcuts.py takes them apart, building exactly what the
token-by-token way builds. Any error sends the input through the base grammar (the same
file without those shortcuts), so every error keeps dtc's token boundaries.

Spans: line and column are 1-based; `end_line`/`end_column` point just past the last
character (exclusive), so a one-character token at column 5 ends at column 6. A Piece's
span is exactly its literal (`0x10`, `(1 + 2)`, `&lbl`, `"str"`, `[00 11]`).

For /include/ and /incbin/ the search is dtc's: next to the file holding the directive,
then each include dir. With cpp the main text is cpp's output; its line markers name the
user's files, and the "next to" directory is the original file's (as Linux passes
`-i $(dir $<)` to dtc).

lark's tables and compiled lexers are shared and never written by a parse (`_Grammar`),
so parses in several threads need no lock. The files a parse read become `Tree.sources`.

Inputs over 1 MiB leave their tree in the garbage collector's permanent generation
(`gc.freeze()`): a 100k-channel tree is millions of objects, and rescanning them in every
later full collection costs more than the parse. `gc.unfreeze()` undoes it.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lark import Lark
from lark.exceptions import UnexpectedInput, UnexpectedToken
from lark.lexer import BasicLexer, LexerThread
from lark.parsers.lalr_parser import _Parser

from .builder import Builder
from .context import SPACE, ParseContext
from .errors import InputError, Span
from .lexer import Lexer
from .resolve import Resolver
from .tree import Tree

_FREEZE_BYTES = 1 << 20  # inputs above this leave their tree in gc's permanent generation


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
    lexers. Each parse binds its own Builder and lexer callbacks to them (`parse`):
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

    def parse(self, ctx: ParseContext, text: str) -> None:
        """Parse `text`, building into ctx.resolver."""
        callbacks = self._tree_builder.create_callback(Builder(ctx))
        thread = LexerThread.from_text(Lexer(self._lexers, ctx), text)  # type: ignore[arg-type]
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
           symbols: bool) -> ParseContext:
    """One parse of `text` into a fresh context and Resolver; every failure as an
    InputError."""
    ctx = ParseContext(name, text, dirs, main_dir, Resolver(name, symbols=symbols))
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


def _token_error(ctx: ParseContext, e: UnexpectedToken) -> InputError:
    tok = e.token
    if tok.type == "$END":
        f, real, _ = ctx.where(tok.line or 1)
        return InputError(Span(f, real, tok.column or 1), "syntax error: unexpected end of input")
    return InputError(ctx.tspan(tok), f"syntax error (unexpected {str(tok).rstrip(SPACE)!r})")

