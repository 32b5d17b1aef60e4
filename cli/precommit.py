"""`python -m evtchn_spec.cli.precommit [CHECK OPTIONS] FILE...`: the entry of the
pre-commit hook (.pre-commit-hooks.yaml at the repository root).

pre-commit hands a hook many file names at once, after the hook's `args`; `check`
reads one tree. So this runs `evtchn-spec check OPTIONS FILE` for each file in turn
(the options are every argument before the trailing run of .dts/.dtsi/.dtb names)
and exits with the worst exit code: 0 every tree holds, 1 a rule is violated,
2 a file could not be read or the options are wrong.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence

from . import main
from .common import EXIT_INPUT

TREE = re.compile(r"\.(dts|dtsi|dtb)$", re.IGNORECASE)


def split(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """(options, files): the files are the trailing arguments that name trees."""
    n = len(argv)
    while n > 0 and TREE.search(argv[n - 1]):
        n -= 1
    return list(argv[:n]), list(argv[n:])


def run(argv: Sequence[str]) -> int:
    options, files = split(argv)
    if not files:
        print("evtchn-spec precommit: no .dts, .dtsi or .dtb file given", file=sys.stderr)
        return EXIT_INPUT
    worst = 0
    for name in files:
        worst = max(worst, main(["check", *options, name]))
    return worst


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
