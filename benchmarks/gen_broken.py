"""Generate broken dom0less trees for benchmarks/bench_fix.py.

gen_dts.py's valid tree (same domains, channels and seed) with every port cell of a
static event channel redrawn, seeded, from 1..4095: a domU's ports stop at 1023, so
about three cells in four are out of range, and the rest collide now and then. With
--zeros F a fraction F of the side-B cells (the second node of each channel in source
order) ask for port 0 instead, so that the lowest-free-port rule is exercised too.

Usage: python benchmarks/gen_broken.py --domains D --channels C [--seed N]
       [--zeros F] -o OUT.dts
"""

from __future__ import annotations

import argparse
import random
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gen_dts import generate

PORT_CELL = re.compile(r"(xen,evtchn = <)(\d+)( &ec\d+([ab])>;)")


def broken(domains: int, channels: int, *, seed: int = 1, zeros: float = 0.0) -> str:
    rng = random.Random(seed * 7919 + 1)

    def redraw(m: re.Match[str]) -> str:
        # the node pointing at ...a is the channel's b node (its second one)
        second = m.group(4) == "a"
        port = 0 if second and rng.random() < zeros else rng.randint(1, 4095)
        return f"{m.group(1)}{port}{m.group(3)}"

    return PORT_CELL.sub(redraw, generate(domains, channels, seed=seed))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--domains", type=int, required=True)
    ap.add_argument("--channels", type=int, required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--zeros", type=float, default=0.0)
    ap.add_argument("-o", "--output", required=True)
    a = ap.parse_args()
    Path(a.output).write_text(broken(a.domains, a.channels, seed=a.seed, zeros=a.zeros))


if __name__ == "__main__":
    main()
