"""What the oracle's modules and its two subcommands share: the random suite's
defaults, the manifest's name, and the one error type of `vectors` and `diff`.

Nothing here imports anything heavy, so the command line can build its parser
(every `evtchn-spec` run does) from this module alone.
"""

from __future__ import annotations

from pathlib import Path

RANDOM_CASES = 100
RANDOM_SEED = 2022
INDEX = "index.json"


class VectorsError(Exception):
    """A problem the user must fix (exit 2, one line).

    With `path`, the line is `PATH: message`, the file it is about first (as every
    input error of the CLI); without one, the command names itself instead."""

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        super().__init__(message if path is None else f"{path}: {message}")
        self.path = None if path is None else str(path)


class ImplNotRunnable(Exception):
    """`diff`: the command cannot be started at all (exit 2)."""


def error_line(command: str, exc: VectorsError) -> str:
    """The one stderr line for `exc`: `PATH: message`, or `evtchn-spec CMD: message`."""
    return str(exc) if exc.path is not None else f"evtchn-spec {command}: {exc}"
