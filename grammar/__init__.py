"""Front end: DTS text (lark) and DTB bytes, both to one resolved `Tree`.

`load` is the one entry point the rest of the project uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .dtb import read_dtb
from .dts import parse_dts_owned
from .errors import InputError, file_span
from .inputs import read_input
from .tree import Tree

FDT_MAGIC = b"\xd0\x0d\xfe\xed"


def load(
    path: str | Path,
    *,
    cpp: bool = False,
    include_dirs: Sequence[str | Path] = (),
    symbols: bool = False,
) -> Tree:
    """Read a `.dts` (optionally through cpp) or a `.dtb` into a resolved tree.

    `symbols` asks for the `__symbols__` node, as `dtc -@` makes it.
    Raises InputError (one line, with a position) for anything it cannot read.
    """
    name = str(path)
    try:
        data = read_input(name)
    except OSError as exc:
        raise InputError(file_span(name), f"cannot read file: {exc.strerror or exc}") from None
    if data[:4] == FDT_MAGIC:
        return read_dtb(data, name)
    # hand the only reference over: a 20 MB source is not kept twice (bytes and text)
    box = [data]
    del data
    return parse_dts_owned(box, name, cpp=cpp, include_dirs=include_dirs, symbols=symbols)
