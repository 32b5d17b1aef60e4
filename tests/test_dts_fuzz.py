"""Property tests of the DTS front end on random and mutated text.

* whatever the bytes, `parse_dts` returns a Tree or raises InputError (one line, with
  a position) and nothing else;
* on small mutations of the valid cases it agrees with the installed dtc on whether
  the input is accepted, and where both accept, on every byte of the DTB.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from evtchn_spec.grammar.dtb import write_dtb
from evtchn_spec.grammar.dts import parse_dts
from evtchn_spec.grammar.errors import InputError
from evtchn_spec.grammar.tree import Tree
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

VALID = sorted((Path(__file__).parent / "data" / "dts" / "valid").glob("*.dts"))
SOURCES = [p.read_bytes() for p in VALID]
_DTC = shutil.which("dtc")
assert _DTC is not None, "dtc must be installed: run ./install.sh"
DTC: str = _DTC

# fragments that dtc's lexer gives meaning to, so mutations reach deep into the grammar
VOCAB = [
    b";", b"{", b"}", b"<", b">", b"[", b"]", b"(", b")", b",", b"=", b"/", b"&", b":",
    b"/dts-v1/;", b"/plugin/;", b"/memreserve/ 1 2;", b"/bits/ 8", b"/bits/ 64",
    b"/delete-node/", b"/delete-property/", b"/omit-if-no-ref/", b"/incbin/",
    b"a", b"l:", b"&l", b"&{/}", b"&{/a}", b"0x10", b"1", b"0", b"08", b"'a'", b"'\\n'",
    b'"s"', b'"\\x41"', b"[00 11]", b"<1 2>", b"(1/0)", b"(1 ? 2 : 3)", b"-", b"~", b"!",
    b"<<", b">>", b"&&", b"||", b"==", b"phandle = <1>;", b"linux,phandle = <2>;",
    b"name = \"x\";", b"n@1", b"/* c */", b"// c\n", b"\n", b" ", b"\\", b"#", b"@",
    b"# 1 \"f.dtsi\"\n", b"l: n { p = <&l>; };", b"/ { };", b"&l { x; };",
]

mutation = st.tuples(
    st.sampled_from(["delete", "insert", "duplicate", "replace"]),
    st.floats(0, 1), st.floats(0, 1), st.sampled_from(VOCAB),
)


def mutate(src: bytes, ops: list[tuple[str, float, float, bytes]]) -> bytes:
    data = bytearray(src)
    for kind, a, b, word in ops:
        i = int(a * len(data))
        j = min(len(data), i + 1 + int(b * 12))
        if kind == "delete":
            del data[i:j]
        elif kind == "insert":
            data[i:i] = word
        elif kind == "duplicate":
            data[i:i] = data[i:j]
        else:
            data[i:j] = word
    return bytes(data)


def outcome(data: bytes) -> Tree | InputError:
    try:
        return parse_dts(data, "fuzz.dts")
    except InputError as exc:
        assert "\n" not in str(exc)
        assert exc.span.line >= 0 and exc.span.column >= 0
        return exc


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_random_bytes_give_tree_or_input_error(data: bytes) -> None:
    outcome(b"/dts-v1/;\n" + data)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(VOCAB), max_size=40))
def test_token_soup_gives_tree_or_input_error(words: list[bytes]) -> None:
    outcome(b"/dts-v1/;\n" + b" ".join(words))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, len(SOURCES) - 1), st.lists(mutation, min_size=1, max_size=3),
       st.booleans())
def test_mutated_cases_agree_with_dtc(which: int, ops: list[tuple[str, float, float, bytes]],
                                      symbols: bool) -> None:
    data = mutate(SOURCES[which], ops)
    got = outcome(data) if not symbols else _with_symbols(data)
    ref = subprocess.run([DTC, "-q", "-I", "dts", "-O", "dtb", *(["-@"] if symbols else []),
                          "-o", "-", "-"], input=data, capture_output=True, check=False,
                         cwd=VALID[0].parent, timeout=60)
    if ref.returncode == 0:
        assert isinstance(got, Tree), f"dtc accepts, we reject: {got}\n{data!r}"
        assert write_dtb(got) == ref.stdout, data
    else:
        assert isinstance(got, InputError), f"dtc rejects: {ref.stderr!r}\n{data!r}"


def _with_symbols(data: bytes) -> Tree | InputError:
    try:
        return parse_dts(data, "fuzz.dts", symbols=True)
    except InputError as exc:
        return exc
