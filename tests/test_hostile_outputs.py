"""Hostile output paths: nothing the user has is ever lost, and no output problem is
an internal error (exit 70) or a traceback.

Every command that writes a file (dump in all formats, fix -o, prove --certificate,
table --guest-dt) is run against a matrix of output shapes (new, existing, read-only,
symlinked, a private device node, a FIFO, a directory, a missing parent, the input
itself under several names, a write that fails half way...), as root and as an
unprivileged user. Each case runs in a directory of its own, hashed (sha256, mode,
file type, owner) before and after: only what the user named as the output may change,
and no temporary file may be left.

The cases run through one driver process per user that forks a child per case (so
that z3 and the package are imported once, yet every case is a fresh process with
its own descriptors, umask and limits).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lark
import pytest
import z3
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evtchn_spec.cli import main, output
from evtchn_spec.cli.prove import STEPS_MAX, TIMEOUT_MAX_MS, solver_seconds, step_count
from evtchn_spec.proofs import certify

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "dom0less-three-domus.dts"
TRACE = ROOT / "examples" / "dom0less-three-domus.trace.json"
FIXABLE = ROOT / "tests" / "data" / "xen" / "port-reused.dts"
IS_ROOT = os.geteuid() == 0
NOBODY = 65534
SETPRIV = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
CHILD_ENV = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
CHILD_ENV.pop("EVTCHN_SPEC_DEBUG", None)

# The driver: runs every case of a JSON list in a forked child, in the case's
# directory, with stdout and stderr going to files there (renamed out of the way
# before the after-snapshot), and writes the exit codes to a results file.
DRIVER = r"""
import json, os, resource, sys
os.umask(0o022)
import evtchn_spec.cli as cli
import evtchn_spec.proofs.certify  # z3, once, before the forks
cases = json.load(open(sys.argv[1]))
results = []
for case in cases:
    sys.stdout.flush(); sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        try:
            os.chdir(case["dir"])
            for fd, name in ((1, case["stdout"]), (2, case["stderr"])):
                f = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
                os.dup2(f, fd)
                os.close(f)
            if case.get("fsize"):
                resource.setrlimit(resource.RLIMIT_FSIZE,
                                   (case["fsize"], resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
            rc = cli.main(case["argv"])
            sys.stdout.flush(); sys.stderr.flush()
        except BaseException as exc:
            os.write(2, f"driver: {type(exc).__name__}: {exc}\n".encode())
            rc = 99
        os._exit(rc)
    _, status = os.waitpid(pid, 0)
    results.append(os.waitstatus_to_exitcode(status))
json.dump(results, open(sys.argv[2], "w"))
"""


@functools.cache
def _nobody_env() -> dict[str, str]:
    """The environment for the unprivileged child: a world-readable copy of what the CLI
    imports (the package laid out as pyproject.toml's package-dir maps it, lark and z3).
    The checkout and its .venv may lie where another user cannot read (a clone under
    /root); the matrix tests the tool, not the checkout's permissions. The interpreter
    itself falls back to its base installation when it cannot read the venv."""
    site = Path(tempfile.mkdtemp(prefix="hostile-site-"))
    atexit.register(shutil.rmtree, site, True)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    mapping = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-dir"]
    for pkg, folder in sorted(mapping.items(), key=lambda kv: kv[0].count(".")):
        shutil.copytree(ROOT / folder, site.joinpath(*pkg.split(".")), ignore=skip,
                        dirs_exist_ok=True)
    for mod in (lark, z3):
        src = Path(mod.__file__ or "").parent
        shutil.copytree(src, site / src.name, ignore=skip)
    for dirpath, _dirnames, filenames in os.walk(site):
        os.chmod(dirpath, 0o755)
        for n in filenames:
            os.chmod(os.path.join(dirpath, n), 0o644 | (os.stat(os.path.join(dirpath, n))
                                                         .st_mode & 0o111))
    return {**CHILD_ENV, "PYTHONPATH": str(site), "PYTHONNOUSERSITE": "1"}


def _world_dir() -> Path:
    """A fresh directory any user may write in (outside pytest's private tmp tree)."""
    d = Path(tempfile.mkdtemp(prefix="hostile-"))
    d.chmod(0o777)
    return d


@pytest.fixture
def world() -> Iterator[Path]:
    d = _world_dir()
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def device(path: Path, minor: int) -> None:
    """A private memory device node (1,3 is null, 1,7 is full), writable by anyone:
    never the system's own /dev/null."""
    os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, minor))
    path.chmod(0o666)


# ---------------------------------------------------------------- snapshots

Entry = tuple[str, int, int, str]  # (type, mode, uid, sha256 | link target | rdev)


def snapshot(top: Path) -> dict[str, Entry]:
    """Every name under `top` (symlinks not followed) with what it holds."""
    out: dict[str, Entry] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st_ = os.lstat(p)
            rel = os.path.relpath(p, top)
            m = st_.st_mode
            if stat.S_ISLNK(m):
                out[rel] = ("link", 0, st_.st_uid, os.readlink(p))
            elif stat.S_ISREG(m):
                digest = hashlib.sha256(Path(p).read_bytes()).hexdigest()
                out[rel] = ("file", stat.S_IMODE(m), st_.st_uid, digest)
            elif stat.S_ISDIR(m):
                out[rel] = ("dir", stat.S_IMODE(m), st_.st_uid, "")
            elif stat.S_ISCHR(m) or stat.S_ISBLK(m):
                out[rel] = ("dev", stat.S_IMODE(m), st_.st_uid, str(st_.st_rdev))
            elif stat.S_ISFIFO(m):
                out[rel] = ("fifo", stat.S_IMODE(m), st_.st_uid, "")
            else:
                out[rel] = ("other", stat.S_IMODE(m), st_.st_uid, "")
    return out


def changed(before: dict[str, Entry], after: dict[str, Entry]) -> set[str]:
    return {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}


# ---------------------------------------------------------------- the matrix

@dataclass(frozen=True)
class Writer:
    """A command that writes one file: how to name its output and its input."""

    name: str
    argv: Callable[[str, str], list[str]]  # (input, OUT) -> argv
    source: Path  # the input's content
    ok_rc: int = 0


WRITERS = [
    Writer("dump-json", lambda i, o: ["dump", i, "-o", o], EXAMPLE),
    Writer("dump-dts", lambda i, o: ["dump", i, "--format", "dts", "-o", o], EXAMPLE),
    Writer("dump-dtb", lambda i, o: ["dump", i, "--format", "dtb", "-o", o], EXAMPLE),
    Writer("fix", lambda i, o: ["fix", i, "-o", o], FIXABLE),
    Writer("prove-certificate",
           lambda i, o: ["prove", i, "--orders", "off", "--certificate", o], EXAMPLE),
]


@dataclass
class Case:
    """One command against one output shape, in a directory of its own."""

    label: str
    argv: list[str]
    dir: Path
    expect: str  # "ok": the output is written; "refuse": exit 2, one line, nothing changed
    out: str  # OUT as given (what the message must name first)
    may_change: set[str] = field(default_factory=set)  # names under dir the run may alter
    ok_rc: int = 0
    fsize: int = 0  # RLIMIT_FSIZE for the run (a write that fails half way)
    message: str | None = None  # the exact stderr line expected, if known
    check: Callable[[Case], None] | None = None  # more to assert after the run
    before: dict[str, Entry] = field(default_factory=dict)
    fifo_data: list[bytes] = field(default_factory=list)
    fifo_thread: threading.Thread | None = None

    @property
    def stdout(self) -> Path:
        return self.dir.parent / f"{self.dir.name}.stdout"

    @property
    def stderr(self) -> Path:
        return self.dir.parent / f"{self.dir.name}.stderr"


def _make_case(base: Path, n: int, w: Writer, shape: str, uid: int) -> Case | None:
    """The case `shape` for writer `w`, set up in a new directory under `base`
    (files owned by `uid`, the user who will run it)."""
    d = base / f"c{n:03d}-{w.name}-{shape}"
    d.mkdir()
    d.chmod(0o777)
    inp = "ex.dts"
    out = "new.out"
    may: set[str] = set()
    expect = "ok"
    message: str | None = None
    fsize = 0
    check: Callable[[Case], None] | None = None

    def own(p: Path) -> None:
        os.lchown(p, uid, uid)

    def put(name: str, data: bytes, mode: int = 0o644) -> Path:
        p = d / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        p.chmod(mode)
        own(p)
        return p

    if shape == "input-named-out-tmp":
        inp, out = "board.tmp", "board"
        may = {"board"}
    put(inp, w.source.read_bytes())
    if shape == "new":
        may = {out}
    elif shape == "existing-0640":
        out = "old.out"
        put(out, b"old\n", 0o640)
        may = {out}

        def check(c: Case) -> None:
            assert stat.S_IMODE((c.dir / "old.out").stat().st_mode) == 0o640
    elif shape == "read-only-0444":
        out = "ro.out"
        put(out, b"keep me\n", 0o444)
        if uid == 0:
            may = {out}

            def check(c: Case) -> None:
                assert stat.S_IMODE((c.dir / "ro.out").stat().st_mode) == 0o444
        else:
            expect, message = "refuse", "ro.out: Permission denied (the file is not writable)"
    elif shape == "symlink-to-file":
        out = "link.out"
        put("real.out", b"old\n", 0o600)
        os.symlink("real.out", d / out)
        may = {"real.out"}

        def check(c: Case) -> None:
            assert (c.dir / "link.out").is_symlink()
            assert stat.S_IMODE((c.dir / "real.out").stat().st_mode) == 0o600
    elif shape == "dangling-symlink":
        out = "dangling.out"
        os.symlink("made.out", d / out)
        may = {"made.out"}
    elif shape == "device-null":
        out = "mynull"
        device(d / out, 3)
    elif shape == "device-full":
        out = "myfull"
        device(d / out, 7)
        expect, message = "refuse", "myfull: No space left on device"
    elif shape == "fifo":
        out = "pipe"
        os.mkfifo(d / out)
        (d / out).chmod(0o666)
    elif shape == "directory":
        out = "adir"
        (d / out).mkdir()
        expect, message = "refuse", "adir: is a directory"
    elif shape == "trailing-slash":
        out = "adir/"
        (d / "adir").mkdir()
        expect = "refuse"
    elif shape == "trailing-slash-new":
        out = "newdir/"
        expect = "refuse"
    elif shape == "missing-parent":
        out = "nonexist/x.out"
        expect = "refuse"
    elif shape == "empty":
        out = ""
        expect, message = "refuse", "'': an empty path names no file"
    elif shape == "file-as-parent":
        out = "afile/x.out"
        put("afile", b"a file\n")
        expect = "refuse"
    elif shape == "proc-file":
        if not Path("/proc/version").exists():
            return None
        out = "/proc/version"
        expect = "refuse"
    elif shape == "read-only-dir":
        (d / "rodir").mkdir(mode=0o555)
        (d / "rodir").chmod(0o555)
        out = "rodir/x.out"
        if uid == 0:
            may = {out}  # root may write anywhere: the one shape that differs
        else:
            expect = "refuse"
    elif shape in ("input", "input-dot", "input-dotdot", "input-symlink", "input-hardlink",
                   "input-absolute"):
        out = {"input": inp, "input-dot": f"./{inp}", "input-dotdot": f"sub/../{inp}",
               "input-symlink": "in-link", "input-hardlink": "hard.dts",
               "input-absolute": str(d / inp)}[shape]
        if shape == "input-dotdot":
            (d / "sub").mkdir()
        if shape == "input-symlink":
            os.symlink(inp, d / "in-link")
        if shape == "input-hardlink":
            os.link(d / inp, d / "hard.dts")
        expect, message = "refuse", f"{out}: {output.REFUSAL}"
    elif shape == "input-named-out-tmp":
        pass
    elif shape == "stale-out-tmp":
        out = "res.out"
        put("res.out.tmp", b"someone else's\n")
        may = {out}
    elif shape == "closed-fd":
        out = "/dev/fd/9"
        expect, message = "refuse", "/dev/fd/9: descriptor 9: Bad file descriptor"
    elif shape == "fails-half-way":
        out = "big.out"
        put(out, b"the old output, which must survive\n", 0o644)
        fsize = 700
        expect = "refuse"  # exit 2, one line naming big.out; the old file untouched
    else:
        raise AssertionError(shape)
    if shape == "fifo" or shape.startswith("device"):
        pass  # written in place: the node itself must not change (type, mode, rdev)
    return Case(f"{w.name}/{shape}", w.argv(inp, out), d, expect, out, may, w.ok_rc,
                fsize, message, check)


SHAPES = ["new", "existing-0640", "read-only-0444", "symlink-to-file", "dangling-symlink",
          "device-null", "device-full", "fifo", "directory", "trailing-slash",
          "trailing-slash-new", "missing-parent", "empty", "file-as-parent", "proc-file",
          "read-only-dir", "input", "input-dot", "input-dotdot", "input-symlink",
          "input-hardlink", "input-absolute", "input-named-out-tmp", "stale-out-tmp",
          "closed-fd", "fails-half-way"]


def _guest_cases(base: Path, start: int, uid: int) -> list[Case]:
    """`table --guest-dt DIR`: the directory shapes."""
    cases: list[Case] = []
    names = ["1-domU1.dts", "2-domU2.dts", "3-domU3.dts"]
    for n, shape in enumerate(["new-nested", "existing-with-other-file", "a-file", "a-device",
                               "empty", "symlink-to-input-inside", "directory-inside",
                               "proc", "read-only-dir", "trailing-slash"], start):
        d = base / f"c{n:03d}-guest-dt-{shape}"
        d.mkdir()
        d.chmod(0o777)
        (d / "ex.dts").write_bytes(EXAMPLE.read_bytes())
        os.chown(d / "ex.dts", uid, uid)
        out, expect, may, message = "g", "ok", set(), None
        if shape == "new-nested":
            out = "g/h"
            may = {"g", "g/h", *(f"g/h/{x}" for x in names)}
        elif shape == "trailing-slash":
            out = "g/"
            may = {"g", *(f"g/{x}" for x in names)}
        elif shape == "existing-with-other-file":
            (d / "g").mkdir(mode=0o777)
            (d / "g").chmod(0o777)
            (d / "g" / "notes.txt").write_bytes(b"mine\n")
            (d / "g" / names[0]).write_bytes(b"old fragment\n")
            os.chown(d / "g" / names[0], uid, uid)
            may = {f"g/{x}" for x in names}
        elif shape == "a-file":
            (d / "g").write_bytes(b"a file\n")
            expect, message = "refuse", "g: Not a directory"
        elif shape == "a-device":
            device(d / "g", 3)
            expect, message = "refuse", "g: Not a directory"
        elif shape == "empty":
            out, expect = "", "refuse"
        elif shape == "symlink-to-input-inside":
            (d / "g").mkdir(mode=0o777)
            (d / "g").chmod(0o777)
            os.symlink("../ex.dts", d / "g" / names[1])
            expect, message = "refuse", f"g/{names[1]}: {output.REFUSAL}"
        elif shape == "directory-inside":
            (d / "g").mkdir(mode=0o777)
            (d / "g").chmod(0o777)
            (d / "g" / names[2]).mkdir()
            expect, message = "refuse", f"g/{names[2]}: is a directory"
        elif shape == "proc":
            out, expect = "/proc", "refuse"
        elif shape == "read-only-dir":
            (d / "g").mkdir(mode=0o555)
            (d / "g").chmod(0o555)
            if uid == 0:
                may = {f"g/{x}" for x in names}
            else:
                expect = "refuse"
        cases.append(Case(f"guest-dt/{shape}", ["table", "ex.dts", "--guest-dt", out], d,
                          expect, out, may, message=message))
    return cases


def _misc_cases(base: Path, start: int, uid: int) -> list[Case]:
    """Inputs other than the tree (an included file, the policy) as the output."""
    cases: list[Case] = []
    d = base / f"c{start:03d}-dump-included-file"
    d.mkdir()
    d.chmod(0o777)
    (d / "inc").mkdir()
    (d / "inc" / "part.dtsi").write_bytes(b"/ { extra { x = <1>; }; };\n")
    (d / "top.dts").write_bytes(b'/dts-v1/;\n/include/ "inc/part.dtsi"\n/ { y = <2>; };\n')
    for f in (d / "inc", d / "inc" / "part.dtsi", d / "top.dts"):
        os.chown(f, uid, uid)
    cases.append(Case("dump/included-file", ["dump", "top.dts", "-o", "inc/part.dtsi"], d,
                      "refuse", "inc/part.dtsi",
                      message=f"inc/part.dtsi: {output.REFUSAL}"))
    d = base / f"c{start + 1:03d}-prove-policy"
    d.mkdir()
    d.chmod(0o777)
    (d / "ex.dts").write_bytes(EXAMPLE.read_bytes())
    (d / "p.toml").write_bytes(b'[[allow]]\na = "domU1"\nb = "domU2"\n')
    for f in (d / "ex.dts", d / "p.toml"):
        os.chown(f, uid, uid)
    cases.append(Case("prove/policy", ["prove", "ex.dts", "--orders", "off", "--policy",
                                       "p.toml", "--certificate", "p.toml"], d,
                      "refuse", "p.toml", message=f"p.toml: {output.REFUSAL}"))
    return cases


def _reference(w: Writer) -> bytes | None:
    """What the writer puts on stdout (compared with what it writes to a file), or
    None where the output differs run to run (the certificate has timings)."""
    if w.name == "prove-certificate":
        return None
    with tempfile.TemporaryDirectory() as t:
        src = Path(t) / "ex.dts"
        src.write_bytes(w.source.read_bytes())
        argv = w.argv("ex.dts", "-")
        res = subprocess.run([sys.executable, "-m", "evtchn_spec.cli", *argv], cwd=t,
                             capture_output=True, check=False, env=CHILD_ENV)
        assert res.returncode == w.ok_rc, res.stderr
        return res.stdout


def _start_fifo_reader(c: Case) -> None:
    def read() -> None:
        with open(c.dir / "pipe", "rb") as fh:
            c.fifo_data.append(fh.read())

    c.fifo_thread = threading.Thread(target=read, daemon=True)
    c.fifo_thread.start()


def _finish_fifo_reader(c: Case) -> None:
    assert c.fifo_thread is not None
    c.fifo_thread.join(timeout=5)
    if c.fifo_thread.is_alive():  # the command never opened it: let the reader go
        with open(c.dir / "pipe", "wb"):
            pass
        c.fifo_thread.join(timeout=5)
        pytest.fail(f"{c.label}: the FIFO was never written")


def run_matrix(as_nobody: bool) -> None:
    base = _world_dir()
    try:
        _run_matrix(base, as_nobody)
    finally:
        for dirpath, dirnames, _ in os.walk(base):
            for n in dirnames:
                with contextlib.suppress(OSError):
                    os.chmod(os.path.join(dirpath, n), 0o755)
        shutil.rmtree(base, ignore_errors=True)


def _run_matrix(base: Path, as_nobody: bool) -> None:
    uid = NOBODY if as_nobody else os.geteuid()
    cases: list[Case] = []
    refs: dict[str, bytes | None] = {w.name: _reference(w) for w in WRITERS}
    n = 0
    for w in WRITERS:
        for shape in SHAPES:
            c = _make_case(base, n, w, shape, uid)
            n += 1
            if c is not None:
                cases.append(c)
    cases += _guest_cases(base, n, uid)
    n += 20
    cases += _misc_cases(base, n, uid)
    for c in cases:
        c.before = snapshot(c.dir)
    plan = base / "plan.json"
    plan.write_text(json.dumps([{"dir": str(c.dir), "argv": c.argv, "stdout": str(c.stdout),
                                 "stderr": str(c.stderr), "fsize": c.fsize}
                                for c in cases]))
    results_file = base / "results.json"
    for c in cases:
        if c.label.endswith("/fifo"):
            _start_fifo_reader(c)
    prefix = SETPRIV if as_nobody else []
    res = subprocess.run([*prefix, sys.executable, "-c", DRIVER, str(plan), str(results_file)],
                         capture_output=True, text=True, check=False,
                         env=_nobody_env() if as_nobody else CHILD_ENV,
                         cwd=base, timeout=1500)
    assert res.returncode == 0, res.stderr
    rcs: list[int] = json.loads(results_file.read_text())
    assert len(rcs) == len(cases)
    failures: list[str] = []
    for c, rc in zip(cases, rcs, strict=True):
        if c.label.endswith("/fifo"):
            _finish_fifo_reader(c)
        try:
            _judge(c, rc, refs)
        except AssertionError as exc:
            failures.append(f"{c.label} ({'nobody' if as_nobody else 'root'}): {exc}")
    assert not failures, "\n".join(failures)


def _judge(c: Case, rc: int, refs: dict[str, bytes | None]) -> None:
    err = c.stderr.read_text(errors="replace")
    assert rc != 70 and "Traceback" not in err and "internal error" not in err, (rc, err)
    after = snapshot(c.dir)
    diff = changed(c.before, after)
    leftovers = [k for k in after if k not in c.before and k not in c.may_change]
    assert not leftovers, f"left behind: {leftovers}"
    writer = c.label.split("/")[0]
    if c.expect == "refuse":
        lines = err.splitlines()
        assert rc == 2, (rc, err)
        assert len(lines) == 1, err
        shown = c.out if c.out else "''"
        # a file inside --guest-dt DIR is named as DIR/FILE
        inside = writer == "guest-dt" and c.out and lines[0].startswith(c.out.rstrip("/") + "/")
        assert lines[0].startswith(f"{shown}: ") or inside, lines[0]
        if c.message is not None:
            assert lines[0] == c.message
        assert not diff, f"changed: {sorted(diff)}"
        return
    assert rc == c.ok_rc, (rc, err)
    assert diff <= c.may_change, f"changed beyond the output: {sorted(diff - c.may_change)}"
    ref = refs.get(writer)
    for name in c.may_change:
        p = c.dir / name
        if p.is_file() and ref is not None:
            assert p.read_bytes() == ref, f"{name}: not the command's output"
    if c.label.endswith("/fifo"):
        if ref is not None:
            assert c.fifo_data == [ref]
        else:
            assert c.fifo_data and c.fifo_data[0].strip()
    if writer == "prove-certificate":
        for name in c.may_change:
            p = c.dir / name
            if p.is_file():
                assert b"(check-sat)" in p.read_bytes()
    if c.check is not None:
        c.check(c)


def test_output_matrix_as_the_invoking_user() -> None:
    run_matrix(as_nobody=False)


@pytest.mark.skipif(not IS_ROOT, reason="switching to an unprivileged user needs root")
def test_output_matrix_as_an_unprivileged_user() -> None:
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed: cannot switch user")
    run_matrix(as_nobody=True)


# ---------------------------------------------------------------- stdout

def _cli(argv: list[str], cwd: Path, stdout: Any = subprocess.PIPE,
         shell_redirect: str = "", as_nobody: bool = False) -> subprocess.CompletedProcess[bytes]:
    cmd = [sys.executable, "-m", "evtchn_spec.cli", *argv]
    if shell_redirect:
        cmd = ["sh", "-c", f'exec "$@" {shell_redirect}', "sh", *cmd]
    if as_nobody:
        cmd = [*SETPRIV, *cmd]
    return subprocess.run(cmd, cwd=cwd, stdout=stdout, stderr=subprocess.PIPE, check=False,
                          env=_nobody_env() if as_nobody else CHILD_ENV, timeout=300)


STDOUT_COMMANDS: list[list[str]] = [
    ["dump", "ex.dts"], ["dump", "ex.dts", "--format", "dtb"], ["check", "ex.dts"],
    ["table", "ex.dts"], ["boot", "ex.dts"], ["boot", "ex.dts", "--format", "json"],
    ["graph", "ex.dts"],
    ["prove", "ex.dts", "--orders", "off"], ["fix", "fixable.dts"],
    ["run", "ex.dts", "trace.json"], ["vectors", "--help"], ["diff", "--help"],
    ["xen", "--help"], ["--help"],
]


def _inputs(d: Path) -> None:
    shutil.copy(EXAMPLE, d / "ex.dts")
    shutil.copy(TRACE, d / "trace.json")
    shutil.copy(FIXABLE, d / "fixable.dts")


@pytest.mark.skipif(not IS_ROOT, reason="a private /dev/full node needs mknod (root)")
@pytest.mark.parametrize("argv", STDOUT_COMMANDS, ids=" ".join)
def test_stdout_full_disk_is_one_line_and_exit_2(world: Path, argv: list[str]) -> None:
    _inputs(world)
    full = world / "myfull"
    device(full, 7)
    before = snapshot(world)
    with open(full, "wb") as fh:
        res = _cli(argv, world, stdout=fh)
    err = res.stderr.decode()
    assert res.returncode == 2 and err == "stdout: No space left on device\n", err
    assert snapshot(world) == before


@pytest.mark.parametrize("argv", STDOUT_COMMANDS, ids=" ".join)
def test_closed_stdout_is_one_line_and_exit_2(world: Path, argv: list[str]) -> None:
    _inputs(world)
    before = snapshot(world)
    res = _cli(argv, world, stdout=None, shell_redirect=">&-")
    err = res.stderr.decode()
    assert res.returncode == 2 and err == "stdout: standard output is closed\n", err
    assert snapshot(world) == before


@pytest.mark.parametrize("argv", STDOUT_COMMANDS, ids=" ".join)
def test_broken_pipe_is_quiet_and_exit_0(world: Path, argv: list[str]) -> None:
    _inputs(world)
    r, w = os.pipe()
    os.close(r)  # the reader is gone before the first byte: every write is EPIPE
    try:
        res = _cli(argv, world, stdout=w)
    finally:
        os.close(w)
    assert res.returncode == 0 and res.stderr == b"", res.stderr


def test_closed_stdout_with_an_output_file_still_writes_it(world: Path) -> None:
    """A closed descriptor 1 must not become the output file's (or anything's)."""
    _inputs(world)
    res = _cli(["dump", "ex.dts", "-o", "out.json"], world, stdout=None,
               shell_redirect=">&-")
    assert res.returncode == 0 and res.stderr == b""
    assert json.loads((world / "out.json").read_text())["format"] == 1


def test_dev_stdout_is_written_in_place(world: Path) -> None:
    """`-o /dev/stdout` with stdout a regular file: the file the shell opened is
    written (same inode), not replaced by a new one."""
    _inputs(world)
    target = world / "captured.json"
    target.write_bytes(b"")
    ino = target.stat().st_ino
    for name in ("/dev/stdout", "/dev/fd/1", "-"):
        with open(target, "wb") as fh:
            res = _cli(["dump", "ex.dts", "-o", name], world, stdout=fh)
        assert res.returncode == 0, res.stderr
        assert target.stat().st_ino == ino
        assert json.loads(target.read_text())["format"] == 1


def test_dev_stdout_onto_the_input_is_refused(world: Path) -> None:
    _inputs(world)
    before = (world / "ex.dts").read_bytes()
    with open(world / "ex.dts", "ab") as fh:
        res = _cli(["dump", "ex.dts", "-o", "/dev/stdout"], world, stdout=fh)
    assert res.returncode == 2
    assert res.stderr.decode() == f"/dev/stdout: {output.REFUSAL}\n"
    assert (world / "ex.dts").read_bytes() == before


# ---------------------------------------------------------------- solver limits

BAD_TIMEOUTS = ["inf", "-inf", "nan", "0", "-1", "0.0", "abc", "", "1e400"]


@pytest.mark.parametrize("value", BAD_TIMEOUTS)
@pytest.mark.parametrize("cmd", [["prove", "ex.dts"], ["fix", "ex.dts"],
                                 ["prove", "ex.dts", "--invariants"]])
def test_a_bad_timeout_is_a_usage_error(capsys: pytest.CaptureFixture[str], cmd: list[str],
                                        value: str) -> None:
    rc = main([*cmd, "--timeout", value])
    err = capsys.readouterr().err
    assert rc == 2 and "--timeout" in err and "Traceback" not in err


@pytest.mark.parametrize("value", ["0", "-1", "1.5", "abc", str(STEPS_MAX + 1), "1e3"])
def test_a_bad_step_bound_is_a_usage_error(capsys: pytest.CaptureFixture[str],
                                           value: str) -> None:
    rc = main(["prove", str(EXAMPLE), "--steps", value, "--policy", "p.toml"])
    err = capsys.readouterr().err
    assert rc == 2 and "--steps" in err


def test_steps_without_a_policy_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prove", str(EXAMPLE), "--steps", "2"]) == 2
    assert capsys.readouterr().err == "evtchn-spec: --steps needs --policy POLICY.toml\n"


@given(st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr),
                 st.floats(min_value=1e-12, max_value=1e30).map(str),
                 st.text(max_size=8)))
def test_every_accepted_timeout_is_a_real_limit_z3_takes(text: str) -> None:
    """A --timeout is rejected or becomes 1 .. 2**32-1 ms: never 0 (no limit), never a
    value Z3 refuses (the query would be an internal error)."""
    import argparse

    try:
        seconds = solver_seconds(text)
    except argparse.ArgumentTypeError:
        return
    ms = certify.timeout_ms(seconds)
    assert 1 <= ms <= TIMEOUT_MAX_MS
    assert 1 <= int(seconds * 1000) <= TIMEOUT_MAX_MS  # as orders.py converts it


@given(st.integers(min_value=-10, max_value=STEPS_MAX + 10))
def test_steps_accepts_exactly_the_documented_bound(k: int) -> None:
    import argparse

    try:
        assert step_count(str(k)) == k and 1 <= k <= STEPS_MAX
    except argparse.ArgumentTypeError:
        assert not 1 <= k <= STEPS_MAX


def test_huge_timeouts_are_capped_and_tiny_ones_are_a_limit(world: Path) -> None:
    """1e300 s is Z3's longest limit (the proof runs); 0.0001 s is 1 ms (the slow
    ORDERS claim cannot finish: unknown, exit 3, never proved)."""
    _inputs(world)
    res = _cli(["prove", "ex.dts", "--timeout", "1e300"], world)
    assert res.returncode == 0, res.stderr
    res = _cli(["prove", "ex.dts", "--orders", "on", "--timeout", "0.0001"], world)
    assert res.returncode in (0, 3) and b"Traceback" not in res.stderr
    if res.returncode == 0:  # only if every query, ORDERS included, beat 1 ms
        assert b"unknown" not in res.stdout
    res = _cli(["fix", "fixable.dts", "--timeout", "1e300"], world)
    assert res.returncode == 0 and res.stdout.startswith(b"/dts-v1/;"), res.stderr


def test_a_solver_resource_error_is_unknown_not_internal(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def exhausted(script: str) -> list[str]:
        raise certify.SolverGaveUp("out of memory")

    monkeypatch.setattr(certify, "eval_script", exhausted)
    rc = main(["prove", str(EXAMPLE), "--orders", "off"])
    out = capsys.readouterr().out
    assert rc == 3 and "result: unknown" in out


def test_the_seed_refusal_names_the_file_first(capsys: pytest.CaptureFixture[str]) -> None:
    for cmd in ("prove", "fix"):
        assert main([cmd, str(EXAMPLE), "--dialect", "seed"]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"{EXAMPLE}: ") and len(err.splitlines()) == 1


# ---------------------------------------------------------------- any path shape

COMPONENTS = ["adir", "afile", "new", "ex.dts", "in-link", "mynull", "dead-link", "..", ".",
              "", "nonexist", "ex.dts.tmp", ".ex.dts."]


def _shape_dir() -> Path:
    d = _world_dir()
    shutil.copy(EXAMPLE, d / "ex.dts")
    (d / "adir").mkdir()
    (d / "adir" / "kept").write_bytes(b"kept\n")
    (d / "afile").write_bytes(b"a file\n")
    (d / "ex.dts.tmp").write_bytes(b"not a temporary file\n")
    os.symlink("ex.dts", d / "in-link")
    os.symlink("adir/gone", d / "dead-link")
    if IS_ROOT:
        device(d / "mynull", 3)
    return d


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(COMPONENTS), min_size=1, max_size=4), st.booleans(),
       st.sampled_from(["json", "dts", "dtb"]))
def test_any_path_shape_writes_the_named_file_or_refuses_cleanly(
        parts: list[str], absolute: bool, fmt: str) -> None:
    """For any path built from these names: exit 0 with only the named file (its
    real path) changed, or exit 2 with one line `OUT: message` and nothing changed;
    never a leftover, never the input."""
    d = _shape_dir()
    try:
        out = "/".join(parts)
        if absolute:
            out = f"{d}/{out}"
        before = snapshot(d)
        cwd = os.getcwd()
        stdout = io.TextIOWrapper(io.BytesIO())
        stderr = io.StringIO()
        os.chdir(d)
        try:
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                rc = main(["dump", "ex.dts", "--format", fmt, "-o", out])
            real = os.path.realpath(out) if out else ""
        finally:
            os.chdir(cwd)
        after = snapshot(d)
        err = stderr.getvalue()
        diff = changed(before, after)
        if rc == 0:
            assert err == ""
            rel = os.path.relpath(real, d)
            assert diff <= {rel}, (out, sorted(diff))
            assert rel != "ex.dts"
            if rel in after:
                kind = after[rel][0]
                assert kind == "file" or (kind == "dev" and before.get(rel) == after[rel])
        else:
            assert rc == 2, (out, rc, err)
            lines = err.splitlines()
            assert len(lines) == 1 and lines[0].startswith(f"{out or repr(out)}: "), err
            assert not diff, (out, sorted(diff))
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_plain_stdout_appending_to_the_input_is_refused(world: Path) -> None:
    """`dump ex.dts >> ex.dts`: what would go to stdout goes into the input."""
    _inputs(world)
    before = (world / "ex.dts").read_bytes()
    with open(world / "ex.dts", "ab") as fh:
        res = _cli(["dump", "ex.dts"], world, stdout=fh)
    assert res.returncode == 2
    assert res.stderr.decode() == f"stdout: {output.REFUSAL}\n"
    assert (world / "ex.dts").read_bytes() == before


def test_closed_stdout_is_no_error_when_nothing_is_written(world: Path) -> None:
    """fix of a tree that already certifies prints nothing: a closed stdout is fine."""
    _inputs(world)
    res = _cli(["fix", "ex.dts"], world, stdout=None, shell_redirect=">&-")
    assert res.returncode == 0, res.stderr
    assert res.stderr.decode().startswith("fix: the config already certifies")


@pytest.mark.skipif(not IS_ROOT, reason="giving a file to another owner needs root")
def test_root_keeps_the_owner_and_mode_of_the_file_it_replaces(world: Path) -> None:
    _inputs(world)
    out = world / "theirs.json"
    out.write_bytes(b"old\n")
    os.chown(out, NOBODY, NOBODY)
    out.chmod(0o640)
    res = _cli(["dump", "ex.dts", "-o", "theirs.json"], world)
    assert res.returncode == 0, res.stderr
    st_ = out.stat()
    assert (st_.st_uid, st_.st_gid, stat.S_IMODE(st_.st_mode)) == (NOBODY, NOBODY, 0o640)
    assert json.loads(out.read_text())["format"] == 1
