"""Reading the user's files with a bound on size, and without waiting forever.

Every input the project reads (a DTS or DTB, an /include/d file, an /incbin/ file, a
trace, a policy) comes through here, so one rule holds for all of them:

* a regular file larger than MAX_INPUT_BYTES is refused before it is read;
* a pipe, FIFO or socket (e.g. `<(cat x.dts)`) is read up to MAX_INPUT_BYTES, and
  refused if it holds more;
* a character or block device (`/dev/zero`, a terminal) is refused outright: it may
  never end, and no tree, trace or policy is one;
* `/incbin/("f", off, len)` is the exception: like dtc it reads exactly the bytes it
  asks for (a seek, then `len` bytes, or fewer at the end of the file), from any file,
  a device included, as long as `len` bytes fit under MAX_INPUT_BYTES.

Errors name the file as a whole (`FILE:1:1: message`, see errors.file_span) or, for
/include/ and /incbin/, the directive that asked.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import BinaryIO

from .errors import InputError, Span, file_span

MAX_INPUT_BYTES = 256 << 20  # 256 MiB: the largest input (or /incbin/ slice) read
_LIMIT_TEXT = "256 MiB"
_CHUNK = 1 << 20


def _kind(mode: int) -> str:
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISDIR(mode):
        return "a directory"
    return "not a regular file"


def too_large(what: str = "input") -> str:
    """The one wording of the size limit, for every reader."""
    return f"{what} too large (the limit is {_LIMIT_TEXT}, {MAX_INPUT_BYTES} bytes)"


def _read_stream(fh: BinaryIO, limit: int, at: Span, what: str) -> bytes:
    """Up to `limit` bytes of a stream that cannot say its size; refused if longer."""
    parts: list[bytes] = []
    got = 0
    while True:
        chunk = fh.read(min(_CHUNK, limit + 1 - got))
        if not chunk:
            return b"".join(parts)
        parts.append(chunk)
        got += len(chunk)
        if got > limit:
            raise InputError(at, too_large(what))


def _open(path: str) -> BinaryIO:
    """The file opened for reading without blocking on a FIFO that has no writer yet
    (reading such a FIFO then ends at once, as an empty file)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        os.set_blocking(fd, True)
        return open(fd, "rb", buffering=0)
    except BaseException:
        os.close(fd)
        raise


def read_input(path: str, at: Span | None = None, what: str = "input") -> bytes:
    """The whole of file `path`, within MAX_INPUT_BYTES (see the module docstring).

    OSError from opening or reading is left to the caller (its message differs by
    input kind); everything else is an InputError at `at` (default: the file itself).
    """
    where = at if at is not None else file_span(path)
    with _open(path) as fh:
        st = os.fstat(fh.fileno())
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
        if stat.S_ISREG(mode):
            if st.st_size > MAX_INPUT_BYTES:
                raise InputError(where, too_large(what))
            # (a file that grows while it is read is still cut at the limit)
            return _read_stream(fh, MAX_INPUT_BYTES, where, what)
        if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
            return _read_stream(fh, MAX_INPUT_BYTES, where, what)
        raise InputError(where, f"cannot read {what}: {_kind(mode)}, not a file")


def read_slice(path: str, offset: int, length: int, at: Span, shown: str) -> bytes:
    """dtc's /incbin/("f", offset, length): seek, then at most `length` bytes.

    A stream that cannot seek is an error when offset is not 0 (dtc: "Couldn't seek");
    `length` beyond MAX_INPUT_BYTES is read only while the file lasts and refused past
    the limit, so an endless device cannot hang the parse.
    """
    with _open(path) as fh:
        if stat.S_ISDIR(os.fstat(fh.fileno()).st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
        if offset:
            try:
                fh.seek(offset)
            except (OSError, OverflowError, ValueError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else \
                    "Invalid argument"
                raise InputError(at, f'Couldn\'t seek to offset {offset} in "{shown}": '
                                     f"{reason}") from None
        want = min(length, MAX_INPUT_BYTES + 1)
        parts: list[bytes] = []
        got = 0
        while got < want:
            chunk = fh.read(min(_CHUNK, want - got))
            if not chunk:
                break
            parts.append(chunk)
            got += len(chunk)
        if got > MAX_INPUT_BYTES:
            raise InputError(at, too_large(f'/incbin/ of "{shown}"'))
        return b"".join(parts)
