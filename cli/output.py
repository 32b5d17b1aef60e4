"""Every file the command line writes (`-o OUT`, `--certificate`, `--guest-dt DIR`)
and its standard output go through here, so that no output can lose what the user has.

* A regular file (or a new one) is replaced atomically: the text goes to a fresh
  temporary name in the same directory (created exclusively, so it collides with
  nothing), which takes the old file's mode (and, as root, its owner) and is renamed
  over OUT only once it is complete. A failure removes it; the old OUT is untouched.
* Anything else that can be opened for writing (a character or block device, a FIFO)
  is written in place, never replaced; `/dev/stdout`, `/dev/fd/N` and
  `/proc/self/fd/N` mean the descriptor itself.
* A symlink is followed: its target is what is replaced or written.
* A directory, a missing parent, a path ending in `/`, an empty path or a place the
  user cannot write is one `OutputError` (`OUT: message`, exit 2) before any work is
  done, and leaves nothing behind.
* An output that is (by device and inode) one of the command's input files is
  refused, whatever name or link leads to it.
* Standard output is guarded: a full disk, a closed stdout or a broken pipe is a
  `StdoutError`, which the command line reports in one line (`main` in cli.py).
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import re
import stat
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Literal, TextIO, cast

Writer = Callable[[BinaryIO], object]


class OutputError(Exception):
    """An output that cannot (or must not) be written: `PATH: message`."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(path, message)
        self.path = path
        self.message = message

    def __str__(self) -> str:
        return f"{self.path or repr(self.path)}: {self.message}"


class StdoutError(OutputError):
    """Standard output failed (full disk, closed, broken pipe)."""

    def __init__(self, exc: OSError) -> None:
        super().__init__("stdout", _reason(exc))
        self.errno = exc.errno


REFUSAL = "refusing to write over the input file"

# the descriptor a path names by itself (bash treats these names the same way)
_FD_PATH = re.compile(r"/dev/fd/(\d+)|/proc/(?:self|thread-self|\d+)/fd/(\d+)")
_STD_NAMES = {"/dev/stdin": 0, "/dev/stdout": 1, "/dev/stderr": 2}


@dataclass(frozen=True, slots=True)
class Target:
    """Where one output goes, decided before anything is written."""

    given: str  # as the user wrote it (what messages name)
    kind: Literal["stdout", "fd", "replace", "in-place"]
    path: str = ""  # the real path (symlinks followed), for "replace" and "in-place"
    fd: int = -1  # for "fd"
    old: os.stat_result | None = None  # the file being replaced, if there is one


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _fd_of(path: str) -> int | None:
    """The descriptor `path` names (only for a path that is a name of one: /dev/fd/N)."""
    a = os.path.abspath(path)
    if a in _STD_NAMES:
        return _STD_NAMES[a]
    m = _FD_PATH.fullmatch(a)
    if m is None or (a.startswith("/proc/") and a.split("/")[2] not in
                     ("self", "thread-self", str(os.getpid()))):
        return None
    return int(m.group(1) or m.group(2))


def _link_chain(path: str) -> Iterator[str]:
    """`path` and each name its symlinks lead to in turn (at most 40 hops, as Linux)."""
    p = path
    for _ in range(40):
        yield p
        try:
            nxt = os.readlink(p)
        except OSError:
            return
        p = os.path.join(os.path.dirname(p), nxt)


def resolve(out: str | None) -> Target:
    """What writing to `out` would mean; raises OutputError for an impossible output.
    Creates nothing."""
    if out is None or out == "-":
        return Target("stdout", "stdout")  # messages name it "stdout"
    if out == "":
        raise OutputError(out, "an empty path names no file")
    if "\0" in out:
        raise OutputError(out, "a path cannot contain a NUL byte")
    if out.endswith("/"):
        what = "is a directory" if os.path.isdir(out) else "names a directory, not a file"
        raise OutputError(out, f"{what} (an output path cannot end in '/')")
    for hop in _link_chain(out):
        fd = _fd_of(hop)
        if fd is not None:
            try:
                os.fstat(fd)
            except OSError as exc:
                raise OutputError(out, f"descriptor {fd}: {_reason(exc)}") from None
            return Target(out, "fd", fd=fd)
    real = os.path.realpath(out)
    try:
        st: os.stat_result | None = os.stat(real)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise OutputError(out, _reason(exc)) from None
    if st is None:
        return Target(out, "replace", real, old=None)
    mode = st.st_mode
    if stat.S_ISDIR(mode):
        raise OutputError(out, "is a directory")
    if stat.S_ISREG(mode):
        return Target(out, "replace", real, old=st)
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
        return Target(out, "in-place", real, old=st)
    raise OutputError(out, "is a socket or other special file, not something to write to")


def _shown_parent(t: Target) -> str:
    """The directory of the output as messages name it: as the user wrote it, unless
    a symlink leads elsewhere."""
    mine = os.path.dirname(t.given) or "."
    real = os.path.dirname(t.path) or "."
    return mine if os.path.realpath(mine) == real else real


def _probe_directory(t: Target) -> None:
    """Can a file be made next to `t.path`? (Tried, not guessed: a read-only mount,
    /proc or a missing directory all answer here, before the work is done.)"""
    parent = os.path.dirname(t.path) or "."
    shown = _shown_parent(t)
    try:
        pst = os.stat(parent)
    except OSError as exc:
        raise OutputError(t.given, f"{_reason(exc)} (the directory {shown})") from None
    if not stat.S_ISDIR(pst.st_mode):
        raise OutputError(t.given, f"Not a directory ({shown} is not one)")
    try:
        fd, tmp = tempfile.mkstemp(dir=parent, prefix=_prefix(t.path))
    except OSError as exc:
        raise OutputError(t.given, f"cannot create a file in {shown}: {_reason(exc)}") \
            from None
    os.close(fd)
    os.unlink(tmp)


def _prefix(path: str) -> str:
    return "." + os.path.basename(path)[:100] + "."


def same_file(st: os.stat_result, inputs: Iterable[str]) -> str | None:
    """The input (a regular file) that `st` is, if any: by device and inode, so that
    hard links, symlinks and other spellings of the same name are all caught."""
    for name in inputs:
        try:
            ist = os.stat(name)
        except (OSError, ValueError):
            continue
        if stat.S_ISREG(ist.st_mode) and (ist.st_dev, ist.st_ino) == (st.st_dev, st.st_ino):
            return name
    return None


def check_not_input(t: Target, inputs: Iterable[str]) -> None:
    """OutputError if writing `t` would write over one of `inputs`."""
    st: os.stat_result | None
    if t.kind == "fd":
        try:
            st = os.fstat(t.fd)
        except OSError:
            st = None  # closed since: the write will say so
    elif t.kind == "stdout":
        try:
            st = os.fstat(sys.stdout.fileno())
        except (OSError, ValueError, AttributeError, OutputError):
            # not a real descriptor (a test's capture) or closed (an error only if
            # something is written): nothing to compare
            st = None
    else:
        try:
            st = os.stat(t.path)
        except OSError:
            st = None  # not there (yet): no input can be it
    if st is not None and same_file(st, inputs) is not None:
        raise OutputError(t.given, REFUSAL)


def prepare(out: str | None, inputs: Iterable[str]) -> Target:
    """Everything that can be known before the work: OutputError if `out` cannot or
    must not be written (exit 2, nothing created)."""
    t = resolve(out)
    check_not_input(t, inputs)  # first: the one refusal that protects the user's data
    if t.old is not None and not os.access(t.path, os.W_OK):
        # replacing would succeed where writing would not (a read-only file in a
        # directory we may write): honour the file's own permission, as `>` does
        raise OutputError(t.given, "Permission denied (the file is not writable)")
    if t.kind == "replace":
        _probe_directory(t)
    return t


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_stream(t: Target, write: Writer, inputs: Iterable[str] = (),
                 seeks: bool = False) -> None:
    """Write the output of `write` (which streams into a binary file) to `t`. A writer
    that `seeks` gets a buffer where the file cannot seek. `inputs` are checked again
    (the work may have named more, such as included files)."""
    inputs = list(inputs)
    if t.kind != "stdout":
        check_not_input(t, inputs)
    if t.kind == "stdout":
        _write_stdout(write, seeks)
    elif t.kind == "replace":
        _replace(t, write, seeks)
    else:
        try:
            fd = os.dup(t.fd) if t.kind == "fd" else \
                os.open(t.path, os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC)
        except OSError as exc:
            raise OutputError(t.given, _reason(exc)) from None
        try:
            with open(fd, "wb", closefd=True) as fh:
                _write_to(fh, write, seeks)
        except OSError as exc:
            raise OutputError(t.given, _reason(exc)) from None


def write_bytes(t: Target, data: bytes | str, inputs: Iterable[str] = ()) -> None:
    raw = data.encode() if isinstance(data, str) else data
    write_stream(t, lambda fh: fh.write(raw), inputs)


def _write_to(fh: BinaryIO, write: Writer, seeks: bool) -> None:
    if seeks and not fh.seekable():
        buf = io.BytesIO()
        write(buf)
        fh.write(buf.getbuffer())
    else:
        write(fh)
    fh.flush()


def _write_stdout(write: Writer, seeks: bool) -> None:
    out = sys.stdout
    if out is None:
        raise StdoutError(OSError(errno.EBADF, "standard output is closed"))
    _write_to(cast(BinaryIO, out.buffer), write, seeks)
    out.flush()


def _replace(t: Target, write: Writer, seeks: bool) -> None:
    parent = os.path.dirname(t.path) or "."
    try:
        fd, tmp = tempfile.mkstemp(dir=parent, prefix=_prefix(t.path))
    except OSError as exc:
        raise OutputError(t.given, f"cannot create a file in {_shown_parent(t)}: "
                          f"{_reason(exc)}") from None
    try:
        try:
            if t.old is not None:
                # owner first: a chown clears the set-id bits the chmod then restores
                if os.geteuid() == 0 or t.old.st_uid == os.geteuid():
                    # not ours to give (a group we are not in): keep ours
                    with contextlib.suppress(OSError):
                        os.fchown(fd, t.old.st_uid, t.old.st_gid)
                os.fchmod(fd, stat.S_IMODE(t.old.st_mode))
            else:
                os.fchmod(fd, 0o666 & ~_umask())  # what open(O_CREAT) would have made
            with open(fd, "wb", closefd=False) as fh:
                _write_to(fh, write, seeks)
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, t.path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and not isinstance(exc, OutputError):
            raise OutputError(t.given, _reason(exc)) from None
        raise


def prepare_directory(given: str) -> str:
    """`--guest-dt DIR`: a directory to write into (made if missing); OutputError
    for a file, a device or a place that cannot be made."""
    if given == "":
        raise OutputError(given, "an empty path names no directory")
    try:
        st = os.stat(given)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise OutputError(given, _reason(exc)) from None
    if st is not None and not stat.S_ISDIR(st.st_mode):
        raise OutputError(given, "Not a directory")
    return given


def make_directory(given: str) -> list[str]:
    """Make `given` (and missing parents); the directories made, deepest last, for
    `remove_directories` to undo."""
    made: list[str] = []
    missing: list[str] = []
    p = os.path.abspath(given)
    while not os.path.exists(p):
        missing.append(p)
        parent = os.path.dirname(p)
        if parent == p:
            break
        p = parent
    for d in reversed(missing):
        try:
            os.mkdir(d)
        except OSError as exc:
            remove_directories(made)
            raise OutputError(given, f"cannot make the directory: {_reason(exc)}") from None
        made.append(d)
    return made


def remove_directories(made: list[str]) -> None:
    for d in reversed(made):
        with contextlib.suppress(OSError):
            os.rmdir(d)  # only if still empty


class _GuardedBinary:
    """sys.stdout.buffer whose failures are StdoutError."""

    def __init__(self, inner: BinaryIO) -> None:
        self._inner = inner

    def write(self, data: bytes | bytearray | memoryview) -> int:
        try:
            return self._inner.write(data)
        except OSError as exc:
            raise StdoutError(exc) from None

    def flush(self) -> None:
        try:
            self._inner.flush()
        except OSError as exc:
            raise StdoutError(exc) from None

    def seekable(self) -> bool:
        return False  # stdout is never seeked (a writer that seeks gets a buffer)

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)


class GuardedStdout:
    """sys.stdout whose failures are StdoutError (one line, a documented exit code)
    rather than an OSError from anywhere in a command."""

    def __init__(self, inner: TextIO | None) -> None:
        self._inner = inner

    def _check(self) -> TextIO:
        if self._inner is None:
            raise StdoutError(OSError(errno.EBADF, "standard output is closed"))
        return self._inner

    def write(self, s: str) -> int:
        inner = self._check()
        try:
            return inner.write(s)
        except OSError as exc:
            raise StdoutError(exc) from None

    def writelines(self, lines: Iterable[str]) -> None:
        """Each string in turn (a generator's too), guarded as `write`, a few thousand
        at a time."""
        chunk: list[str] = []
        for s in lines:
            chunk.append(s)
            if len(chunk) >= 4096:
                self.write("".join(chunk))
                chunk.clear()
        if chunk:
            self.write("".join(chunk))

    def flush(self) -> None:
        if self._inner is None:
            return
        try:
            self._inner.flush()
        except OSError as exc:
            raise StdoutError(exc) from None

    @property
    def buffer(self) -> _GuardedBinary:
        return _GuardedBinary(self._check().buffer)

    def isatty(self) -> bool:
        return self._inner is not None and self._inner.isatty()

    def __getattr__(self, name: str) -> object:
        return getattr(self._check(), name)


def silence_stdout() -> None:
    """After a failed stdout: point descriptor 1 at /dev/null, so that what is still
    buffered does not fail again (with a traceback) when Python exits."""
    try:
        fd = sys.__stdout__.fileno() if sys.__stdout__ is not None else -1
    except (OSError, ValueError, AttributeError):
        return
    if fd < 0:
        return
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, fd)
    finally:
        os.close(null)


def fill_closed_std_descriptors() -> None:
    """Descriptors 0-2 closed at start (`>&-`): hold them with /dev/null, so that no
    file the command opens becomes "stdout" by accident (a closed stdout stays
    closed for the command: its writes fail, as StdoutError)."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            got = os.open(os.devnull, os.O_RDWR)
            if got != fd:  # a lower one was free after all: leave it as it is
                os.close(got)
