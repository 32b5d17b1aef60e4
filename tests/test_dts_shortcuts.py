"""The shortcut tokens of the DTS grammar (the `//@fast` lines of dts.lark) buy speed only.

* A tree written so that every shortcut applies, and the same text with a `/**/` in
  place of every 4-space gap (which defeats every shortcut without moving any other
  character), give the same tree: every value, label, span, piece and reference, and
  the same DTB, which is also dtc's.
* On any text, valid or not, the fast grammar and the base grammar (dts.lark without
  its `//@fast` lines, which reports errors at dtc's token boundaries) give the same
  tree or the same error.
* The friendly form really is lexed into whole-node and whole-statement tokens.
"""

from __future__ import annotations

import collections
import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evtchn_spec.grammar import dts, lexer
from evtchn_spec.grammar.dtb import write_dtb
from evtchn_spec.grammar.dts import parse_dts
from evtchn_spec.grammar.errors import InputError
from evtchn_spec.grammar.tree import Tree

_DTC = shutil.which("dtc")
assert _DTC is not None, "dtc must be installed: run ./install.sh"
DTC: str = _DTC

GAP = "    "  # a gap between tokens; the defeating form writes "/**/" instead
# as in test_dts_fuzz: EVTCHN_SPEC_FUZZ_SCALE=100 for a long local campaign
SCALE = float(os.environ.get("EVTCHN_SPEC_FUZZ_SCALE", "1"))


def _n(examples: int) -> int:
    return max(1, int(examples * SCALE))


# ---- a small tree model, rendered token by token ----

def _num(draw: Any) -> str:
    v = draw(st.integers(0, 2**32 - 1))
    form = draw(st.sampled_from(["dec", "hex", "HEX", "oct", "suffix"]))
    if form == "hex":
        return hex(v)
    if form == "HEX":
        return "0X" + format(v, "X")
    if form == "oct":
        return "0" + format(v, "o")
    if form == "suffix":
        return str(v) + draw(st.sampled_from(["U", "UL", "ULL", "L", "LL"]))
    return str(v)


_STR_CHARS = st.sampled_from([*"abz09 ,;:{}<>[]/*&=#@-_.", "\\n", "\\t", '\\"', "\\\\",
                              "\\x41", "\\101"])


@st.composite
def trees(draw: Any) -> dict[str, Any]:
    """Nodes with labels, properties with string / cell / byte-string values
    (references only to labels and paths that exist)."""
    counter = iter(range(10_000))
    labels: list[str] = []
    paths: list[str] = []

    def node(depth: int, path: str) -> dict[str, Any]:
        kids = []
        used: set[str] = set()
        for _ in range(draw(st.integers(0, 3 if depth < 3 else 0))):
            name = "n" + draw(st.sampled_from(["a", "b", "cd", "e-f", "g,h", "i_j", "k.l"]))
            if draw(st.booleans()):
                name += "@" + format(draw(st.integers(0, 0xFFF)), "x")
            if name in used:
                continue
            used.add(name)
            labs = [f"L{next(counter)}" for _ in range(draw(st.sampled_from([0, 0, 1, 2, 10])))]
            labels.extend(labs)
            child_path = f"{path.rstrip('/')}/{name}"
            paths.append(child_path)
            kid = node(depth + 1, child_path)
            kid["name"] = ("\\" + name) if draw(st.integers(0, 9)) == 0 else name
            kid["labels"] = labs
            kids.append(kid)
        props = []
        pnames = draw(st.lists(st.sampled_from(["p", "q", "#x-cells", "r,s", "t_u", "v.w",
                                                "x+y", "z?"]), max_size=4, unique=True))
        for pname in pnames:
            if draw(st.integers(0, 9)) == 0:
                pname = "\\" + pname
            props.append((pname, [value() for _ in range(draw(st.integers(1, 3)))]))
        return {"props": props, "kids": kids}

    def value() -> tuple[str, list[str]]:
        kind = draw(st.sampled_from(["str", "cells", "bytes"]))
        if kind == "str":
            return kind, ["".join(draw(st.lists(_STR_CHARS, max_size=6)))]
        if kind == "bytes":
            return kind, [format(b, "02x") for b in draw(st.lists(st.integers(0, 255),
                                                                  max_size=5))]
        return kind, ["ref" if draw(st.integers(0, 4)) == 0 else _num(draw)
                      for _ in range(draw(st.integers(0, 4)))]

    root = node(0, "/")

    # references drawn once every label and path exists
    def fill(n: dict[str, Any]) -> None:
        for _, values in n["props"]:
            for kind, items in values:
                if kind == "cells":
                    for i, it in enumerate(items):
                        if it == "ref":
                            targets = [f"&{lab}" for lab in labels]
                            targets += [f"&{{{p}}}" for p in paths]
                            items[i] = draw(st.sampled_from(targets)) if targets else "1"
        for k in n["kids"]:
            fill(k)

    fill(root)
    return root


def render(root: dict[str, Any], gaps: list[str], defeat: bool) -> str:
    """DTS text; gaps[i] is the layout of the i-th gap between tokens, `|` standing
    for 4 spaces, or with defeat for a `/**/` (same length, no shortcut across it)."""
    out = ["/dts-v1/;\n/ {\n"]
    k = 0
    block = "/**/" if defeat else GAP

    def gap() -> None:
        nonlocal k
        g = gaps[k % len(gaps)] if gaps else "|"
        k += 1
        out.append(g.replace("|", block))

    def body(n: dict[str, Any]) -> None:
        for pname, values in n["props"]:
            out.append(pname)
            gap()
            out.append("=")
            gap()
            for j, (kind, items) in enumerate(values):
                if j:
                    out.append(",")
                    gap()
                if kind == "str":
                    out.append('"' + items[0] + '"')
                elif kind == "bytes":
                    out.append("[")
                    for b in items:
                        gap()
                        out.append(b)
                    gap()
                    out.append("]")
                else:
                    out.append("<")
                    for c in items:
                        gap()
                        out.append(c)
                    gap()
                    out.append(">")
                gap()
            out.append(";")
            gap()
        for kid in n["kids"]:
            for lab in kid["labels"]:
                out.append(lab + ":")
                gap()
            out.append(kid["name"])
            gap()
            out.append("{")
            gap()
            body(kid)
            out.append("}")
            gap()
            out.append(";")
            gap()

    body(root)
    out.append("};\n")
    return "".join(out)


gap_lists = st.lists(st.sampled_from(["|", "|", "|", " |", "\n|", "|\n", "\t|\n\t",
                                      "\n\n|", "\r\n|", "|\f\v"]), max_size=12)


def describe(tree: Tree) -> list[Any]:
    """Everything the front end produces, positions included."""
    out: list[Any] = []
    for n in tree.walk():
        out.append((n.path, n.span, n.labels, n.phandle, n.other_spans))
        for p in n.properties.values():
            out.append((p.name, p.value, p.span, p.labels, p.refs, p.pieces))
    out.append((tree.memreserves, sorted(tree.labels), [str(w) for w in tree.warnings]))
    return out


def outcome(text: str) -> list[Any] | str:
    try:
        tree = parse_dts(text.encode("latin-1"), "s.dts")
    except InputError as exc:
        return "ERR " + str(exc)
    return [*describe(tree), write_dtb(tree)]


@contextlib.contextmanager
def base_grammar_only() -> Iterator[None]:
    """parse_dts with the base grammar alone (what the fast one falls back to)."""
    fast_parser = dts._parser
    dts._parser = lambda fast=True: fast_parser(False)  # type: ignore[assignment]
    try:
        yield
    finally:
        dts._parser = fast_parser  # type: ignore[assignment]


@contextlib.contextmanager
def token_counts() -> Iterator[collections.Counter[str]]:
    """Counts the tokens the fast parser is fed, by type."""
    counts: collections.Counter[str] = collections.Counter()
    lex = lexer.Lexer.lex

    def counting(self: Any, state: Any, parser_state: Any) -> Iterator[Any]:
        for tok in lex(self, state, parser_state):
            counts[tok.type] += 1
            yield tok

    lexer.Lexer.lex = counting  # type: ignore[method-assign]
    try:
        yield counts
    finally:
        lexer.Lexer.lex = lex  # type: ignore[method-assign]


# ---- the properties ----

@settings(max_examples=_n(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trees(), gap_lists)
def test_defeated_shortcuts_give_the_same_tree_and_dtc_bytes(root: dict[str, Any],
                                                              gaps: list[str]) -> None:
    fast_text = render(root, gaps, defeat=False)
    slow_text = render(root, gaps, defeat=True)
    assert len(fast_text) == len(slow_text)
    fast = outcome(fast_text)
    slow = outcome(slow_text)
    assert not isinstance(fast, str), f"{fast}\n{fast_text}"
    assert fast == slow, f"\n{fast_text}\n{slow_text}"
    ref = subprocess.run([DTC, "-q", "-I", "dts", "-O", "dtb", "-o", "-", "-"],
                         input=fast_text.encode("latin-1"), capture_output=True,
                         check=False, timeout=60)
    assert ref.returncode == 0, ref.stderr
    assert fast[-1] == ref.stdout, fast_text


@settings(max_examples=_n(40), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trees(), gap_lists)
def test_friendly_form_is_lexed_as_whole_nodes_and_statements(root: dict[str, Any],
                                                              gaps: list[str]) -> None:
    text = render(root, gaps, defeat=False)
    with token_counts() as counts:
        parse_dts(text.encode("latin-1"), "s.dts")
    nodes = extra_labels = 0
    stack = list(root["kids"])
    while stack:
        n = stack.pop()
        nodes += 1
        extra_labels += max(0, len(n["labels"]) - 8)  # the token takes at most 8
        stack += n["kids"]
    # no statement takes the long way; a node is one token (a leaf) or two (open, close)
    assert counts["PROPSTMT"] == len(root["props"]), counts  # the root's own
    assert counts["NODELEAF"] + counts["NODEOPEN"] == nodes, counts
    assert counts["LABEL"] == extra_labels, counts
    assert counts["LBRACE"] == 1, counts  # the root's
    # `}` and `;` on two lines take the long way
    assert set(counts) <= {"V1", "SEMI", "SLASH", "LBRACE", "RBRACE", "NODECLOSE",
                           "NODEOPEN", "NODELEAF", "PROPSTMT", "LABEL"}, counts


_MUTATIONS = ["", ";", "}", "{", "};", "} ;", "}\n;", ":", "a:", "l: n {", "=", ",", "<",
              ">", "[", "]", "\"", "\\", "/**/", "//\n", "&", "&{/", "0x", "/delete-node/ ",
              "/omit-if-no-ref/ ", "/bits/ 8 ", "\"a\", ", "<1>, ", "[00], ", "#"]


@settings(max_examples=_n(200), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trees(), gap_lists,
       st.lists(st.tuples(st.sampled_from(["edit", "edit", "truncate", "append"]),
                          st.integers(0, 2**16), st.integers(0, 6),
                          st.sampled_from(_MUTATIONS)),
                min_size=1, max_size=3))
def test_fast_and_base_grammar_agree_on_any_text(
        root: dict[str, Any], gaps: list[str], edits: list[tuple[str, int, int, str]]) -> None:
    text = render(root, gaps, defeat=False)
    for kind, at, cut, word in edits:
        i = at % (len(text) + 1)
        if kind == "truncate":
            text = text[:i]
        elif kind == "append":  # after the root: where LALR's merged states differ
            text += word
        else:
            text = text[:i] + word + text[i + cut:]
    fast = outcome(text)
    with base_grammar_only():
        base = outcome(text)
    assert fast == base, text
