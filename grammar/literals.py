"""dtc's literals: integers (strtoull with dtc's checks), character literals and
string escapes (data_copy_escape_string), each error at its literal's span."""

from __future__ import annotations

from lark import Token

from .context import SPACE, ParseContext
from .errors import InputError, Span

M64 = (1 << 64) - 1
INT_MAX = 0x7FFFFFFF
_ESC = {"a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13}


def strtol_prefix(x: str, base: int) -> tuple[int, int]:
    """C strtol on a short buffer: (value, characters consumed), 0 consumed if none."""
    i = 0
    n = len(x)
    while i < n and x[i] in SPACE:
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


def unescape(text: str, i: int, end: int, at: Span | None) -> bytes:
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
            v, used = strtol_prefix(text[i - 1 : i + 2], 8)
            i += used - 1
            out.append(v & 0xFF)
        elif c == "x":
            v, used = strtol_prefix(text[i : i + 2], 16)
            if used == 0:
                raise InputError(at or Span("<unknown>", 0, 0),
                                 "\\x used with no following hex digits")
            i += used
            out.append(v & 0xFF)
        else:
            out.append(ord(c) & 0xFF)
    return bytes(out)


def number_value(ctx: ParseContext, tok: Token) -> int:
    return integer_literal(str(tok), tok, ctx)


def integer_literal(s: str, at: Token | Span, ctx: ParseContext | None = None) -> int:
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


def char_value(ctx: ParseContext, tok: Token) -> int:
    s = str(tok)
    d = unescape(s, 1, len(s) - 1, ctx.tspan(tok))
    if not d:
        raise InputError(ctx.tspan(tok), "Empty character literal")
    if len(d) > 1:
        raise InputError(ctx.tspan(tok),
                         f"Character literal has {len(d)} characters instead of 1")
    return d[0]


def string_value(ctx: ParseContext, tok: Token) -> bytes:
    s = str(tok)
    if "\\" not in s:
        return s[1:-1].encode("latin-1") + b"\0"
    return unescape(s, 1, len(s) - 1, ctx.tspan(tok)) + b"\0"


def syntax_error(ctx: ParseContext, tok: Token, what: str = "") -> InputError:
    return InputError(ctx.tspan(tok), "syntax error" + (f": {what}" if what else ""))
