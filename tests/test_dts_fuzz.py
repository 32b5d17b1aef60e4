"""Property tests of the DTS front end on random and mutated text.

* whatever the bytes, `parse_dts` returns a Tree or raises InputError (one line, with
  a position) and nothing else;
* on small mutations of the valid cases it agrees with the installed dtc on whether
  the input is accepted, and where both accept, on every byte of the DTB.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evtchn_spec.grammar.dtb import write_dtb
from evtchn_spec.grammar.dts import parse_dts
from evtchn_spec.grammar.errors import InputError
from evtchn_spec.grammar.tree import Tree

VALID = sorted((Path(__file__).parent / "data" / "dts" / "valid").glob("*.dts"))
SOURCES = [p.read_bytes() for p in VALID]
# CI runs a quick sample; a long local campaign scales every fuzz test, e.g.
# EVTCHN_SPEC_FUZZ_SCALE=100 python -m pytest tests/test_dts_fuzz.py
SCALE = float(os.environ.get("EVTCHN_SPEC_FUZZ_SCALE", "1"))


def _n(examples: int) -> int:
    return max(1, int(examples * SCALE))


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


@settings(max_examples=_n(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_random_bytes_give_tree_or_input_error(data: bytes) -> None:
    outcome(b"/dts-v1/;\n" + data)


@settings(max_examples=_n(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(VOCAB), max_size=40))
def test_token_soup_gives_tree_or_input_error(words: list[bytes]) -> None:
    outcome(b"/dts-v1/;\n" + b" ".join(words))


@settings(max_examples=_n(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])
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


# ---- a generator of small trees that stress merging, deletion, labels and references ----
NAMES = ["a", "b", "a@1", "c", "d@2"]
REFS = ["r1", "r2", "r3", "r1", "r2", "r3", "n1"]  # r* always exist, n1 only sometimes
NLABELS = ["n1", "n2", "n3", "n4", "n5", "n6", "n7", "n8"]
PROPS = ["p", "q", "p", "q", "phandle", "linux,phandle", "name", "r", "r"]
CELLS = ["1", "0x2", "&{/a}", "&{/x1}", "&{/b/c}", "(1+1)", "0xffffffff"]


def _val(rng: random.Random) -> str:
    k = rng.random()
    if k < 0.3:
        cells = [rng.choice([*CELLS, "&" + rng.choice(REFS)]) for _ in range(rng.randint(0, 3))]
        return "<" + " ".join(cells) + ">"
    if k < 0.5:
        return '"' + rng.choice(["x", "a", "b", ""]) + '"'
    if k < 0.6:
        return "&" + rng.choice(REFS)
    if k < 0.7:
        return "&{/" + rng.choice(NAMES) + "}"
    if k < 0.8:
        return "[" + rng.choice(["", "00", "0102"]) + "]"
    return _val(rng) + ", " + _val(rng)


def _body(rng: random.Random, depth: int) -> str:
    out: list[str] = []
    for _ in range(rng.randint(0, 3)):
        r = rng.random()
        lab = (rng.choice(NLABELS) + ": ") if rng.random() < 0.1 else ""
        if r < 0.1:
            out.append(f"/delete-property/ {rng.choice(PROPS)};")
        elif r < 0.3:
            out.append(f"{lab}{rng.choice(PROPS)};")
        else:
            out.append(f"{lab}{rng.choice(PROPS)} = {_val(rng)};")
    for _ in range(rng.randint(0, 3 if depth < 3 else 0)):
        if rng.random() < 0.15:
            out.append(f"/delete-node/ {rng.choice(NAMES)};")
            continue
        pre = ""
        if rng.random() < 0.5:
            pre += rng.choice(NLABELS) + ": "
        if rng.random() < 0.15:
            pre += "/omit-if-no-ref/ "
        out.append(f"{pre}{rng.choice(NAMES)} {{ {_body(rng, depth + 1)} }};")
    return " ".join(out)


def gen_source(rng: random.Random) -> bytes:
    """A small DTS file: a few top-level statements of every kind dtc has."""
    plugin = rng.random() < 0.2
    s = "/dts-v1/;\n" + ("/plugin/;\n" if plugin else "")
    if rng.random() < 0.2:
        s += "/memreserve/ 0x10 0x20;\n"
    first = True
    if not plugin or rng.random() < 0.5:
        s += "/ { r1: x1 { }; r2: x2@1 { }; r3: a { }; };\n"
        first = False
    for _ in range(rng.randint(1, 5)):
        r = rng.random()
        if first or r < 0.3:
            s += f"/ {{ {_body(rng, 0)} }};\n"
        elif r < 0.55:
            s += f"&{rng.choice(REFS)} {{ {_body(rng, 1)} }};\n"
        elif r < 0.65:
            path = rng.choice(["a", "x1", "x2@1", "a/b"])
            s += f"&{{/{path}}} {{ {_body(rng, 1)} }};\n"
        elif r < 0.75:
            s += f"/delete-node/ &{rng.choice(REFS)};\n"
        elif r < 0.82:
            s += f"/omit-if-no-ref/ &{rng.choice(REFS)};\n"
        else:
            s += f"{rng.choice(NLABELS)}: &{rng.choice(REFS)} {{ {_body(rng, 1)} }};\n"
        first = False
    return s.encode()


@settings(max_examples=_n(40), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32), st.booleans())
def test_generated_trees_agree_with_dtc(seed: int, symbols: bool) -> None:
    data = gen_source(random.Random(seed))
    got = _with_symbols(data) if symbols else outcome(data)
    ref = subprocess.run([DTC, "-q", "-I", "dts", "-O", "dtb", *(["-@"] if symbols else []),
                          "-o", "-", "-"], input=data, capture_output=True, check=False,
                         timeout=60)
    if ref.returncode == 0:
        assert isinstance(got, Tree), f"dtc accepts, we reject: {got}\n{data.decode()}"
        assert write_dtb(got) == ref.stdout, data.decode()
    else:
        assert isinstance(got, InputError), f"dtc rejects: {ref.stderr!r}\n{data.decode()}"


def _with_symbols(data: bytes) -> Tree | InputError:
    try:
        return parse_dts(data, "fuzz.dts", symbols=True)
    except InputError as exc:
        return exc


# ---- integer expressions: dtc's 64-bit semantics, operator by operator ----
_OPS = ["?:", "||", "&&", "|", "^", "&", "==", "!=", "<", ">", "<=", ">=", "<<", ">>",
        "+", "-", "*", "/", "%"]
_LEAVES = ["0", "1", "2", "3", "7", "63", "64", "0xff", "0x80000000", "0xffffffff",
           "0x7fffffffffffffff", "0x8000000000000000", "0xffffffffffffffff", "'a'", "010"]

expr = st.recursive(
    st.sampled_from(_LEAVES),
    lambda sub: st.one_of(
        st.tuples(st.sampled_from(["-", "~", "!"]), sub).map(lambda t: f"({t[0]}{t[1]})"),
        st.tuples(st.sampled_from(_OPS[1:]), sub, sub).map(lambda t: f"({t[1]} {t[0]} {t[2]})"),
        st.tuples(sub, sub, sub).map(lambda t: f"({t[0]} ? {t[1]} : {t[2]})"),
    ),
    max_leaves=8,
)


@settings(max_examples=_n(40), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(expr, min_size=1, max_size=12), st.sampled_from([8, 16, 32, 64]))
def test_expressions_agree_with_dtc(exprs: list[str], bits: int) -> None:
    mask = (1 << bits) - 1
    # masked, so that most files are in range; one unmasked to see range errors too
    props = "".join(f"\tp{i} = /bits/ {bits} <({e} & {mask:#x})>;\n" for i, e in enumerate(exprs))
    props += f"\traw = /bits/ {bits} <{exprs[0]}>;\n"
    data = f"/dts-v1/;\n/ {{\n{props}}};\n".encode()
    got = outcome(data)
    ref = subprocess.run([DTC, "-q", "-I", "dts", "-O", "dtb", "-o", "-", "-"], input=data,
                         capture_output=True, check=False, timeout=60)
    if ref.returncode == 0:
        assert isinstance(got, Tree), f"dtc accepts, we reject: {got}\n{data.decode()}"
        assert write_dtb(got) == ref.stdout, data.decode()
    else:
        assert isinstance(got, InputError), f"dtc rejects: {ref.stderr!r}\n{data.decode()}"
