"""Running the C preprocessor the way Linux runs it on device trees.

`cpp -nostdinc -undef -x assembler-with-cpp -D__DTS__ -I DIR...` (scripts/Makefile.lib):
the output keeps line markers, which the DTS lexer follows so that every span points
into the user's own files. A cpp failure becomes one InputError at cpp's first error.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from .errors import InputError, Span, file_span
from .inputs import read_input

INT_MAX = 0x7FFFFFFF
_DIAG = re.compile(
    r"^(?P<file>[^:\n]+):(?P<line>\d+):(?:(?P<col>\d+):)?\s*(?:fatal )?error:\s*(?P<msg>.*)$",
    re.M,
)


def _small(digits: str) -> int:
    """A line or column cpp printed, held at INT_MAX (cpp's own range) so that no
    digit string is too long for int()."""
    return min(int(digits), INT_MAX) if len(digits) < 11 else INT_MAX


def cpp_command(include_dirs: Sequence[str | os.PathLike[str]]) -> list[str]:
    cmd = ["cpp", "-nostdinc", "-undef", "-x", "assembler-with-cpp", "-D__DTS__"]
    for d in include_dirs:
        cmd += ["-I", os.fspath(d)]
    return cmd


def run_cpp(data: bytes, name: str, include_dirs: Sequence[str | os.PathLike[str]]) -> bytes:
    """Preprocess `data` (the contents of file `name`); returns cpp's output.

    When `name` is the file on disk holding exactly `data`, cpp reads it by name, so that
    `#include "x"` is searched next to it and its line markers carry the user's path.
    Otherwise the text goes through stdin, with the file's directory added to -I.
    """
    if shutil.which("cpp") is None:
        raise InputError(file_span(name), "the C preprocessor (cpp) is not installed")
    cmd = cpp_command(include_dirs)
    path = Path(name)
    stdin: bytes | None = None
    try:
        same = path.is_file() and read_input(name) == data
    except OSError:
        same = False
    if same:
        cmd.append(name)
    else:
        parent = str(path.parent) if str(path.parent) else "."
        cmd += ["-I", parent, "-"]
        quoted = name.replace("\\", "\\\\").replace('"', '\\"')
        stdin = f'#line 1 "{quoted}"\n'.encode() + data  # (GNU `# 1` is lost after #include)
    try:
        proc = subprocess.run(cmd, input=stdin, capture_output=True, check=False)
    except OSError as exc:
        raise InputError(file_span(name), f"cannot run cpp: {exc}") from None
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace")
        m = _DIAG.search(err)
        if m is not None:
            col = _small(m.group("col")) if m.group("col") else 1
            fname = m.group("file")
            if fname == "<stdin>":
                fname = name
            raise InputError(Span(fname, _small(m.group("line")), col), m.group("msg").strip())
        first = err.strip().splitlines()[0] if err.strip() else f"exit status {proc.returncode}"
        raise InputError(Span(name, 1, 1), f"cpp failed: {first}")
    return proc.stdout
