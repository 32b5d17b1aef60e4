"""Benchmark: `prove` (Z3 certification) against `check` (the refimpl) on generated trees.

Sizes as perf-anchors.md: s1 (4 domains, 8 channels), s2 (64, 1,000), s3 (512, 10,000),
s4 (2,048, 100,000). Each run is a whole process (`python -m evtchn_spec.cli ...`), so
parsing is included on both sides; the table gives median wall seconds, peak RSS,
the ratio prove/check and prove's seconds per 1,000 channels (flat = linear).

Usage: python benchmarks/bench_prove.py [--sizes s1,s2,s3] [--runs 3] [--dir DIR]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = {"s1": (4, 8), "s2": (64, 1000), "s3": (512, 10000), "s4": (2048, 100000)}
HERE = Path(__file__).resolve().parent


def timed(cmd: list[str]) -> tuple[float, int, int]:
    """Wall seconds, peak RSS (KiB) of the child, exit code."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    rc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, max(after, before), rc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="s1,s2,s3")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dir", default=None, help="where to keep generated trees")
    args = ap.parse_args()
    work = Path(args.dir or tempfile.mkdtemp(prefix="bench_prove_"))
    work.mkdir(parents=True, exist_ok=True)
    print("| size | channels | check s | prove s | prove/check | prove s per 1k channels "
          "| prove peak MiB | verdict |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.sizes.split(","):
        d, c = SIZES[name]
        path = work / f"{name}.dts"
        if not path.exists():
            subprocess.run([sys.executable, str(HERE / "gen_dts.py"), "--domains", str(d),
                            "--channels", str(c), "--seed", "1", "-o", str(path)], check=True)
        cli = [sys.executable, "-m", "evtchn_spec.cli"]
        checks, proves, rss, rcs = [], [], [], set()
        for _ in range(args.runs):  # alternate, so drift hits both alike
            w, _, _ = timed([*cli, "check", str(path)])
            checks.append(w)
            w, m, rc = timed([*cli, "prove", str(path), "--orders", "off"])
            proves.append(w)
            rss.append(m)
            rcs.add(rc)
        ck, pv = statistics.median(checks), statistics.median(proves)
        verdict = {0: "proved", 1: "counterexample", 3: "unknown"}.get(min(rcs), str(rcs))
        print(f"| {name} | {c:,} | {ck:.2f} | {pv:.2f} | {pv / ck:.2f} | {pv / c * 1000:.2f} "
              f"| {max(rss) / 1024:.0f} | {verdict} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
