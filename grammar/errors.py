"""Source positions and the one error type every front-end failure becomes.

Every problem with the user's input is raised as `InputError` carrying a `Span`;
the CLI prints `file:line:col: message` and exits 2. Nothing else in the front
end may escape to the user as a traceback.

One convention for a problem with a file as a whole (it is missing, unreadable, too
large, a device, not UTF-8...): the position is its first character, `FILE:1:1:`
(`file_span`). Every report then has the same three fields, which tools parse.
"""

from __future__ import annotations

from dataclasses import dataclass

_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def one_line(text: str) -> str:
    """`text` with control characters escaped, so a report stays on one line even
    when a file name (e.g. from a cpp line marker) holds a newline."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _ESCAPES.get(c, f"\\x{ord(c):02x}") for c in text)


@dataclass(frozen=True, slots=True)
class Span:
    """Where something stands in the user's sources (1-based line and column).

    For a DTB input, `line` is 1 and `column` is the 1-based byte offset, so that
    binary positions still read as `file:line:col`.
    """

    file: str
    line: int
    column: int
    end_line: int = 0
    end_column: int = 0

    def __str__(self) -> str:
        return f"{one_line(self.file)}:{self.line}:{self.column}"


def file_span(name: str) -> Span:
    """Where a problem with file `name` as a whole is reported: `name:1:1`."""
    return Span(name, 1, 1)


class InputError(Exception):
    """The input cannot be read: one line, pointing at the place (CLI exit 2)."""

    def __init__(self, span: Span, message: str) -> None:
        super().__init__(f"{span}: {one_line(message)}")
        self.span = span
        self.message = message


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """A non-fatal remark about the input (what dtc prints as a warning)."""

    span: Span
    message: str

    def __str__(self) -> str:
        return f"{self.span}: warning: {one_line(self.message)}"
