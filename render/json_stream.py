"""JSON documents written as `json.dumps(doc, indent=2)` writes them, byte for byte,
with their one big member streamed: a 100,000-channel `boot --format json` is 200,000
port entries, and building the whole document and then its text held both at once
(its text as millions of small pieces before they are joined)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, TextIO


def write_json(fp: TextIO, doc: dict[str, Any], stream: str | None = None,
               entries: Iterable[tuple[str, Any]] = ()) -> None:
    """`json.dumps(doc, indent=2) + "\\n"` to fp, except that the value of member
    `stream` (an object) is made of `entries`, one (key, value) at a time, so that
    only one entry is ever held as text. doc holds `stream` for its place only."""
    if not doc:
        fp.write("{}\n")
        return
    sep = "{"
    for key, value in doc.items():
        fp.write(f"{sep}\n  {json.dumps(key)}: ")
        sep = ","
        if key != stream:
            fp.write(json.dumps(value, indent=2).replace("\n", "\n  "))
            continue
        inner = "{"
        for k, v in entries:
            fp.write(f"{inner}\n    {json.dumps(k)}: "
                     + json.dumps(v, indent=2).replace("\n", "\n    "))
            inner = ","
        fp.write("{}" if inner == "{" else "\n  }")
    fp.write("\n}\n")
