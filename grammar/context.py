"""One parse's state: positions (files, cpp line markers, /include/ segments), the
nesting counters, the files read, and the Resolver the builder feeds.

Each parse makes its own `ParseContext`; the lexer callbacks, the shortcut readers and
the builder all receive it, so no parse state is module-global and parses in several
threads need no lock.

Positions: each buffer (the main text, each /include/) gets its own range of "virtual"
line numbers, so a token's line alone says which file and real line it came from (a
bisect in a small table, only when a span is made).
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Sequence

from lark import Token

from .errors import InputError, Span
from .inputs import read_input, read_slice
from .resolve import Resolver
from .tree import FileTable

SPACE = " \t\n\v\f\r"


class ParseContext:
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
        # the file names this parse's packed pieces are numbered in (tree.pack_flat)
        self.files = FileTable()

    # ---- positions ----
    def where(self, vline: int) -> tuple[str, int, str | None]:
        if self.single:
            return self.name, vline, self.segs[0][3]
        i = bisect.bisect_right(self.starts, vline) - 1
        vs, f, real, d = self.segs[i]
        return f, real + vline - vs, d

    def span(self, a: Token, b: Token) -> Span:
        """From the start of token a to the end of token b (whitespace after b excluded)."""
        eline, ecol = end_of(self, b)
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



def end_of(ctx: ParseContext, b: Token) -> tuple[int, int]:
    """Real line and column just past token b (whitespace after it excluded)."""
    if b[-1] in SPACE:
        # tokens that carry trailing whitespace have no newline before it
        eline: int = b.line  # type: ignore[assignment]
        ecol: int = b.column + len(b.rstrip(SPACE))  # type: ignore[operator]
    else:
        eline = b.end_line  # type: ignore[assignment]
        ecol = b.end_column  # type: ignore[assignment]
    if not ctx.single:
        _, eline, _ = ctx.where(eline)
    return eline, ecol
