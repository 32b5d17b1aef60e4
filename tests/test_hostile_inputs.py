"""Hostile inputs: every one ends in a clean exit (0/1/2/3, never 70), with no
traceback, an exit-2 report being one line that names the right file with line:col,
within a time bound (a hang fails the test) and, where it matters, a memory bound; no
input is changed. Small reproducers live in tests/data/hostile/ (see its README), the
big ones are made here. Also: `run`'s per-call changes equal the whole-state diff, and
the bulk reading of long cell lists equals the element-by-element one.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import random
import re
import resource
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evtchn_spec import cli
from evtchn_spec.grammar import load, shortcuts
from evtchn_spec.grammar.dts import parse_dts
from evtchn_spec.grammar.errors import InputError
from evtchn_spec.grammar.lexer import MAX_NODE_DEPTH
from evtchn_spec.refimpl.boot import boot
from evtchn_spec.refimpl.config import Config, xen_profile
from evtchn_spec.refimpl.policy import Policy
from evtchn_spec.refimpl.runtime import (
    MAX_TRACE_DEPTH,
    OPS,
    _changes,
    apply,
    parse_trace,
    run,
    state_json,
)

ROOT = Path(__file__).resolve().parent.parent
EX = ROOT / "examples" / "dom0less-three-domus.dts"
TRACE = ROOT / "examples" / "dom0less-three-domus.trace.json"
HOSTILE = Path(__file__).resolve().parent / "data" / "hostile"
SUBCOMMANDS = ("dump", "check", "table", "graph", "boot", "run", "prove", "fix")
HAVE_DTC = shutil.which("dtc") is not None
LOC = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): \S")


def _digest(paths: list[Path]) -> dict[Path, str]:
    """sha256 of every regular input file (devices and FIFOs are not read)."""
    out = {}
    for p in paths:
        if p.exists() and stat.S_ISREG(p.stat().st_mode):
            out[p] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _argv(sub: str, tree: Path, trace: Path = TRACE, extra: tuple[str, ...] = ()) -> list[str]:
    argv = [sub, str(tree)]
    if sub == "run":
        argv.append(str(trace))
    return [*argv, *extra]


def check_clean(rc: int, err: str, name: str | None = None, where: str | None = None) -> None:
    """The rules every run must keep; for exit 2, the report's file (and line:col)."""
    assert rc in (0, 1, 2, 3), (rc, err)
    assert "Traceback" not in err and "internal error" not in err, err
    if rc == 2:
        lines = err.splitlines()
        assert len(lines) == 1, err
        m = LOC.match(lines[0])
        assert m is not None, err
        if name is not None:
            assert m.group("file") == name, err
        if where is not None:
            assert lines[0].startswith(f"{name}:{where}: "), err


def in_process(argv: list[str]) -> tuple[int, str]:
    """cli.main in this process (fast): exit code and stderr."""
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    err = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main(argv)
    return rc, err.getvalue()


def _limits(mem: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))


def child(argv: list[str], timeout: float = 30, mem: int = 3 << 30) -> tuple[int, str]:
    """The command line in a child process, killed past `timeout` seconds (the test
    then fails) and limited to `mem` bytes of address space."""
    p = subprocess.run([sys.executable, "-m", "evtchn_spec.cli", *argv], capture_output=True,
                       timeout=timeout, preexec_fn=lambda: _limits(mem), check=False)
    return p.returncode, p.stderr.decode("utf-8", "replace")


@contextlib.contextmanager
def unchanged(*paths: Path) -> Iterator[None]:
    before = _digest(list(paths))
    yield
    assert _digest(list(paths)) == before


# ---------------------------------------------------------------- numbers


def _with_marker(tmp_path: Path) -> Path:
    f = tmp_path / "marker.dts"
    f.write_text(f'# {"9" * 5000} "x.dts"\n' + EX.read_text())
    return f


@pytest.mark.parametrize("sub", SUBCOMMANDS)
def test_a_line_marker_of_5000_digits(tmp_path: Path, sub: str) -> None:
    f = _with_marker(tmp_path)
    with unchanged(f):
        rc, err = in_process(_argv(sub, f))
    check_clean(rc, err)
    assert rc in (0, 1), err  # dtc compiles it too (its atoi makes no sense of it)


def test_a_line_marker_number_is_held_at_int_max() -> None:
    src = f'# {"9" * 5000} "x.dts"\n/dts-v1/;\n/ {{ a = ; }};\n'.encode()
    with pytest.raises(InputError) as exc:
        parse_dts(src, "m.dts")
    assert str(exc.value).startswith(f"x.dts:{0x7FFFFFFF + 1}:")


def test_a_line_marker_tree_is_dtcs(tmp_path: Path) -> None:
    if not HAVE_DTC:
        pytest.skip("dtc is not installed")
    f = _with_marker(tmp_path)
    out = tmp_path / "o.dtb"
    rc, err = in_process(["dump", "--format", "dtb", str(f), "-o", str(out)])
    assert rc == 0, err
    ref = subprocess.run(["dtc", "-q", "-I", "dts", "-O", "dtb", str(f)], capture_output=True,
                         check=True).stdout
    assert out.read_bytes() == ref


HUGE = "9" * 5000
HUGE_HEX = "0x" + "f" * 5000
BAD_NUMBERS = [  # (text, where, what): every literal out of dtc's range, located
    (f"/dts-v1/;\n/ {{ a = <{HUGE}>; }};\n", "2:10", "out of range"),
    (f"/dts-v1/;\n/ {{ a = <1 {HUGE_HEX}>; }};\n", "2:12", "out of range"),
    (f"/dts-v1/;\n/ {{ a = /bits/ {HUGE} <1>; }};\n", "2:16", "out of range"),
    (f"/dts-v1/;\n/ {{ a = /bits/ 8 <{HUGE}>; }};\n", "2:19", "out of range"),
    (f"/dts-v1/;\n/ {{ a = <({HUGE} + 1)>; }};\n", "2:11", "out of range"),
    (f"/dts-v1/;\n/ {{ a = <(1 << {HUGE})>; }};\n", "2:16", "out of range"),
    (f"/dts-v1/;\n/memreserve/ {HUGE_HEX} 1;\n/ {{ }};\n", "2:14", "out of range"),
    (f"/dts-v1/;\n/ {{ a = /incbin/(\"x\", {HUGE}, 1); }};\n", "2:23", "out of range"),
    ("/dts-v1/;\n/ { a = <'" + "x" * 5000 + "'>; };\n", "2:10", "Character literal"),
    ("/dts-v1/;\n/ { a = <0x100000000>; };\n", "2:10", "32-bit array element"),
    (f"/dts-v1/;\n/ {{ a = <0{'7' * 5000}>; }};\n", "2:10", "out of range"),
]


@pytest.mark.parametrize(("text", "where", "what"), BAD_NUMBERS)
def test_huge_literals_are_located_errors(tmp_path: Path, text: str, where: str,
                                          what: str) -> None:
    f = tmp_path / "n.dts"
    f.write_text(text)
    rc, err = in_process(["dump", str(f)])
    assert rc == 2
    check_clean(rc, err, str(f), where)
    assert what in err


@pytest.mark.skipif(not HAVE_DTC, reason="dtc is not installed")
@pytest.mark.parametrize("text", [
    f"/dts-v1/;\n/ {{ a = <0x{'0' * 5000}1>, [{'00' * 5000}]; b = /bits/ 64 <0{'0' * 5000}>; }};\n",
    "/dts-v1/;\n/ { a = <0xffffffffffffffff (-1) '\\377' '\\xff'>; "
    "b = /bits/ 8 <0xffffffffffffffff>; };\n",
    "/dts-v1/;\n/ { a = <(1 << 31) (0 - 1) (~0) (5 / 2) (7 % 3)>; };\n",
])
def test_numbers_dtc_accepts_give_dtcs_bytes(tmp_path: Path, text: str) -> None:
    f = tmp_path / "ok.dts"
    f.write_text(text)
    out = tmp_path / "o.dtb"
    rc, err = in_process(["dump", "--format", "dtb", str(f), "-o", str(out)])
    assert rc == 0, err
    ref = subprocess.run(["dtc", "-q", "-I", "dts", "-O", "dtb", str(f)], capture_output=True,
                         check=True).stdout
    assert out.read_bytes() == ref


@given(digits=st.integers(1, 6000), hexa=st.booleans(), bits=st.sampled_from([8, 16, 32, 64]),
       lead=st.integers(0, 3))
@settings(max_examples=40, deadline=None)
def test_any_length_of_number_is_its_value_or_a_located_error(digits: int, hexa: bool,
                                                              bits: int, lead: int) -> None:
    body = ("0x" + "0" * lead + "f" * digits) if hexa else ("1" + "0" * (digits - 1))
    value = int(body, 16) if hexa else 10 ** (digits - 1)
    src = f"/dts-v1/;\n/ {{ a = /bits/ {bits} <{body}>; }};\n".encode()
    limit = (1 << bits) - 1
    if value <= limit or (value <= (1 << 64) - 1 and value | limit == (1 << 64) - 1):
        tree = parse_dts(src, "n.dts")
        assert tree.root.properties["a"].value == (value & limit).to_bytes(bits // 8, "big")
    else:
        with pytest.raises(InputError) as exc:
            parse_dts(src, "n.dts")
        assert str(exc.value).startswith(f"n.dts:2:{18 + len(str(bits))}: ")


def test_a_trace_integer_of_5000_digits(tmp_path: Path) -> None:
    for sign in ("", "-"):
        t = tmp_path / "t.json"
        head = '[{"caller": 1, "op": "send", "args": {"port": '
        t.write_text(head + sign + HUGE + "}}]")
        with unchanged(t):
            rc, err = in_process(["run", str(EX), str(t)])
        check_clean(rc, err, str(t), f"1:{len(head) + 1}")
        assert rc == 2 and "args.port must be an integer" in err
    t.write_text('{"format": ' + HUGE + ', "calls": []}')
    rc, err = in_process(["run", str(EX), str(t)])
    check_clean(rc, err, str(t), "1:12")
    assert "5000 digits" in err


def test_policy_integers_of_any_length(tmp_path: Path) -> None:
    p = tmp_path / "p.toml"
    for value, what in ((HUGE, "integer too long"), (HUGE_HEX, "not a domid"),
                        ("-1", "not a domid"), ("40000", "not a domid")):
        p.write_text(f'[[allow]]\na = "domU1"\nb = {value}\n')
        rc, err = in_process(["check", str(EX), "--policy", str(p)])
        check_clean(rc, err, str(p), "3:5")
        assert rc == 2 and what in err
    p.write_text(f'[[allow]]\na = "domU1"\nb = "{HUGE}"\n')  # a name of digits: a domid
    rc, err = in_process(["check", str(EX), "--policy", str(p)])
    check_clean(rc, err)
    assert rc == 1


# ---------------------------------------------------------------- devices, FIFOs, size


@pytest.mark.skipif(not HAVE_DTC, reason="dtc is not installed")
def test_incbin_reads_only_the_bytes_it_asks_for(tmp_path: Path) -> None:
    f = tmp_path / "z.dts"
    f.write_text('/dts-v1/; / { a = /incbin/("/dev/zero", 0, 16); '
                 'b = /incbin/("/dev/urandom", 4096, 8); };\n')
    out = tmp_path / "o.dtb"
    rc, err = child(["dump", "--format", "dtb", str(f), "-o", str(out)], timeout=30,
                    mem=1 << 30)
    assert rc == 0, err
    tree = load(str(out))
    assert tree.root.properties["a"].value == bytes(16)
    assert len(tree.root.properties["b"].value) == 8
    g = tmp_path / "g.dts"
    g.write_text('/dts-v1/; / { a = /incbin/("/dev/zero", 0, 16); };\n')
    rc, err = in_process(["dump", "--format", "dtb", str(g), "-o", str(out)])
    assert rc == 0, err
    ref = subprocess.run(["dtc", "-q", "-I", "dts", "-O", "dtb", str(g)], capture_output=True,
                         check=True).stdout
    assert out.read_bytes() == ref


def test_incbin_of_a_file_slice(tmp_path: Path) -> None:
    data = bytes(range(256)) * 40
    (tmp_path / "blob.bin").write_bytes(data)
    f = tmp_path / "s.dts"
    f.write_text('/dts-v1/; / { a = /incbin/("blob.bin", 1000, 24); '
                 'b = /incbin/("blob.bin", 10230, 100); c = /incbin/("blob.bin"); };\n')
    tree = load(str(f))
    assert tree.root.properties["a"].value == data[1000:1024]
    assert tree.root.properties["b"].value == data[10230:]
    assert tree.root.properties["c"].value == data


@pytest.mark.parametrize("sub", SUBCOMMANDS)
def test_endless_inputs_are_refused_at_once(tmp_path: Path, sub: str) -> None:
    f = tmp_path / "zz.dts"
    f.write_text('/dts-v1/; / { a = /incbin/("/dev/zero"); };\n')
    rc, err = child(_argv(sub, f), timeout=30, mem=1 << 30)
    check_clean(rc, err, str(f), "1:19")
    assert rc == 2 and "character device" in err
    rc, err = child(_argv(sub, Path("/dev/zero")), timeout=30, mem=1 << 30)
    check_clean(rc, err, "/dev/zero", "1:1")
    assert rc == 2


def test_a_fifo_with_no_writer_is_an_empty_file(tmp_path: Path) -> None:
    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)
    for argv, name in ((["check", str(fifo)], str(fifo)),
                       (["run", str(EX), str(fifo)], str(fifo)),
                       (["check", str(EX), "--policy", str(fifo)], None)):
        rc, err = child(argv, timeout=30)
        check_clean(rc, err, name)
    rc, err = child(["dump", str(EX), "--format", "dtb"], timeout=30)
    assert rc == 0


def test_a_fifo_is_read_like_a_file(tmp_path: Path) -> None:
    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)
    text = EX.read_bytes()
    p = subprocess.Popen([sys.executable, "-m", "evtchn_spec.cli", "check", str(fifo)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    with open(fifo, "wb") as fh:
        fh.write(text)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    assert b"0 error(s)" in out


def test_trace_and_policy_devices(tmp_path: Path) -> None:
    rc, err = child(["run", str(EX), "/dev/zero"], timeout=30, mem=1 << 30)
    check_clean(rc, err, "/dev/zero", "1:1")
    rc, err = child(["check", str(EX), "--policy", "/dev/zero"], timeout=30, mem=1 << 30)
    check_clean(rc, err, "/dev/zero", "1:1")


def test_size_limit_is_said(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from evtchn_spec.grammar import inputs

    monkeypatch.setattr(inputs, "MAX_INPUT_BYTES", 1000)
    f = tmp_path / "big.dts"
    f.write_text("/dts-v1/; / { };\n" + "// x\n" * 400)
    rc, err = in_process(["check", str(f)])
    check_clean(rc, err, str(f), "1:1")
    assert "too large" in err


@pytest.mark.parametrize("sub", ["dump", "check", "run"])
def test_missing_files_are_file_1_1(tmp_path: Path, sub: str) -> None:
    gone = tmp_path / "gone.dts"
    rc, err = in_process(_argv(sub, gone))
    check_clean(rc, err, str(gone), "1:1")
    rc, err = in_process(["run", str(EX), str(gone)])
    check_clean(rc, err, str(gone), "1:1")
    rc, err = in_process(["check", str(EX), "--policy", str(gone)])
    check_clean(rc, err, str(gone), "1:1")


# ---------------------------------------------------------------- nesting


def test_a_trace_nested_100000_deep(tmp_path: Path) -> None:
    t = tmp_path / "deep.json"
    t.write_text("[" * 100_000 + "]" * 100_000)
    with unchanged(t):
        rc, err = child(["run", str(EX), str(t)], timeout=30)
    check_clean(rc, err, str(t), f"1:{MAX_TRACE_DEPTH + 1}")
    assert "nested too deeply" in err


def test_a_policy_nested_5000_deep(tmp_path: Path) -> None:
    p = tmp_path / "deep.toml"
    p.write_text("a = " + "[" * 5000 + "]" * 5000)
    with unchanged(p):
        rc, err = in_process(["check", str(EX), "--policy", str(p)])
    check_clean(rc, err, str(p), "1:105")


@pytest.mark.parametrize("sub", SUBCOMMANDS)
def test_a_dts_nested_100000_deep(tmp_path: Path, sub: str) -> None:
    n = 100_000
    f = tmp_path / "deep.dts"
    f.write_text("/dts-v1/; / {" + "a{" * n + "};" * n + "};\n")
    rc, err = child(_argv(sub, f), timeout=60)
    # the `{` of level 3331 below the root, where dtc runs out of parser stack too
    check_clean(rc, err, str(f), f"1:{15 + 2 * (MAX_NODE_DEPTH - 1)}")


@given(depth=st.integers(1, 4000))
@settings(max_examples=12, deadline=None)
def test_dts_depth_up_to_dtcs_limit(depth: int) -> None:
    src = ("/dts-v1/;\n/ {\n" + "n {\n" * depth + "};\n" * depth + "};\n").encode()
    if depth < MAX_NODE_DEPTH:
        assert parse_dts(src, "d.dts").root.children
    else:
        with pytest.raises(InputError, match="nested too deeply") as exc:
            parse_dts(src, "d.dts")
        assert str(exc.value).startswith(f"d.dts:{2 + MAX_NODE_DEPTH}:3: ")


@given(depth=st.integers(MAX_TRACE_DEPTH - 2, 3000), where=st.sampled_from(["top", "call"]))
@settings(max_examples=20, deadline=None)
def test_trace_depth(depth: int, where: str) -> None:
    # the document's depth counts: a comment in a call is 2 levels down already
    deep = "[" * depth + "]" * depth
    if where == "top":
        text = '{"comment": ' + deep + ', "calls": []}'
        start, above = 12, 1
    else:
        text = '[{"caller": 1, "op": "ack", "comment": ' + deep + "}]"
        start, above = 39, 2
    if depth + above <= MAX_TRACE_DEPTH:
        parse_trace(text, "t.json")
    else:
        with pytest.raises(InputError, match="nested too deeply") as exc:
            parse_trace(text, "t.json")
        col = start + MAX_TRACE_DEPTH - above + 1  # the bracket that opens level 101
        assert str(exc.value).startswith(f"t.json:1:{col}: ")


# ---------------------------------------------------------------- random bytes


@given(st.binary(max_size=300) | st.text(alphabet='[]{}",:0123456789-eE.truefalsn \n',
                                          max_size=200))
@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_random_bytes_as_a_trace(tmp_path: Path, data: bytes | str) -> None:
    t = tmp_path / "r.json"
    t.write_bytes(data if isinstance(data, bytes) else data.encode())
    rc, err = in_process(["run", str(EX), str(t)])
    check_clean(rc, err, str(t) if rc == 2 else None)


@given(st.binary(max_size=300) | st.text(alphabet='[]{}"=.,#\'\nabdefloy0123456789 ',
                                          max_size=200))
@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_random_bytes_as_a_policy(tmp_path: Path, data: bytes | str) -> None:
    p = tmp_path / "r.toml"
    p.write_bytes(data if isinstance(data, bytes) else data.encode())
    rc, err = in_process(["check", str(EX), "--policy", str(p)])
    check_clean(rc, err, str(p) if rc == 2 else None)


@given(st.text(alphabet='[]{}"=.\nab0123456789 ', max_size=200))
@settings(max_examples=100, deadline=None)
def test_any_policy_text_is_a_policy_or_a_located_error(text: str) -> None:
    try:
        Policy.parse(text, "p.toml")
    except InputError as exc:
        msg = str(exc)
        assert msg.startswith("p.toml:") and "\n" not in msg
        line = int(msg.split(":")[1])
        assert 1 <= line <= text.count("\n") + 1


@pytest.mark.parametrize("name", sorted(p.name for p in HOSTILE.glob("*.dts")))
@pytest.mark.parametrize("sub", SUBCOMMANDS)
def test_hostile_files(sub: str, name: str) -> None:
    f = HOSTILE / name
    expect = re.search(r"expect: (\S+)", f.read_text(encoding="latin-1"))
    with unchanged(f):
        rc, err = child(_argv(sub, f), timeout=60)
    check_clean(rc, err, str(f) if rc == 2 else None)
    if expect is not None and expect.group(1) != "ok":
        assert rc == 2 and err.startswith(f"{f}:{expect.group(1)}: "), err


# ---------------------------------------------------------------- run: linear, same output


def _random_trace(rng: random.Random, n: int) -> list[dict[str, object]]:
    calls = []
    for _ in range(n):
        op = rng.choice(sorted(OPS))
        args = {}
        for a in OPS[op].args:
            if a.default is not None and rng.random() < 0.3:
                continue
            pools = {"dom": [0, 1, 2, 3, 0x7FF0], "remote_dom": [0, 1, 2, 3, 0x7FF0],
                     "port": [0, 1, 2, 5, 6, 7, 10, 11, 12, 13, 63, 64, 4095],
                     "remote_port": [1, 5, 6, 7, 10, 11, 12, 13], "vcpu": [0, 1, 2],
                     "virq": [0, 1, 2, 24], "priority": [0, 7, 15, 16]}
            args[a.name] = rng.choice(pools.get(a.name, [0, 1, 16]))
        calls.append({"caller": rng.choice([0, 1, 2, 3, 4]), "op": op, "args": args})
    return calls


@given(seed=st.integers(0, 2**32), n=st.integers(1, 60), xsm=st.sampled_from(["silo", "dummy"]))
@settings(max_examples=40, deadline=None)
def test_run_changes_equal_the_whole_state_diff(seed: int, n: int, xsm: str) -> None:
    """The changes `run` reports from what each call touched are exactly the diff of
    the whole state before and after it (applied here, call by call, on a twin)."""
    rng = random.Random(seed)
    calls = parse_trace(json.dumps(_random_trace(rng, n)), "t.json")
    cfg = Config.from_tree(load(str(EX)), xen_profile("4.17"), "auto")
    res, twin = boot(cfg), boot(cfg)
    res.state.xsm = twin.state.xsm = xsm
    doc = run(res, calls)
    names = {int(k): v["name"] for k, v in doc["initial"]["domains"].items()}
    before = state_json(twin.state, names)
    for call, entry in zip(calls, doc["calls"], strict=True):
        apply(twin.state, call)
        after = state_json(twin.state, names)
        assert entry["changes"] == _changes(before, after)
        before = after
    assert doc["final"]["domains"] == before
    assert state_json(res.state, names) == before  # and the state is left plain
    assert type(res.state.domains) is dict


# ---------------------------------------------------------------- long cell lists


@given(st.lists(st.integers(0, 0xFFFFFFFF), min_size=1, max_size=600),
       st.sampled_from([" ", "  ", "\t", " \t "]), st.booleans())
@settings(max_examples=40, deadline=None)
def test_bulk_cells_equal_the_element_loop(values: list[int], sep: str, hexa: bool) -> None:
    words = [f"{v:#x}" if hexa and v % 3 else str(v) for v in values]
    src = f"/dts-v1/;\n/ {{ a = <{sep.join(words)}>; b = <1 2>, <{sep.join(words)}>; }};\n"
    bulk = parse_dts(src.encode(), "c.dts")
    old = shortcuts._BULK_MIN
    try:
        shortcuts._BULK_MIN = 1 << 40  # the loop, element by element
        loop = parse_dts(src.encode(), "c.dts")
    finally:
        shortcuts._BULK_MIN = old
    for name in ("a", "b"):
        p, q = bulk.root.properties[name], loop.root.properties[name]
        assert p.value == q.value and p.span == q.span
        assert isinstance(p._pieces, bytes) and p._pieces == q._pieces  # packed alike
        assert [p.piece_at(k) for k in range(0, len(p.value), 97)] == \
               [q.piece_at(k) for k in range(0, len(q.value), 97)]
        assert p.pieces == q.pieces


def test_a_property_of_a_million_cells_in_bounded_memory(tmp_path: Path) -> None:
    n = 1_000_000
    f = tmp_path / "big.dts"
    f.write_text("/dts-v1/;\n/ {\n\tbig = <" + " ".join(str(i % 99991) for i in range(n))
                 + ">;\n};\n")
    out = tmp_path / "big.dtb"
    rc, err = child(["dump", "--format", "dtb", str(f), "-o", str(out)], timeout=60,
                    mem=1 << 30)
    assert rc == 0, err
    assert len(out.read_bytes()) > 4 * n
