"""Time `evtchn-spec run` on generated traces of 10^3 .. 10^6 calls.

Each trace is a mix of the calls a guest makes at run time on the example system
(examples/dom0less-three-domus.dts): sends on its static channels, the receiver's
clear, mask/unmask, status queries, and an occasional alloc_unbound/close pair, from
all three domUs. The console script runs as a whole process (start-up, reading the
DTS and the trace, the boot, the calls, the output), once per size and format; the
table gives wall and CPU time, CPU microseconds per call and the peak RSS. Linear in
the trace means the microseconds per call stay flat as the trace grows.

Usage: python benchmarks/bench_run.py [--sizes 1000,10000,100000,1000000]
       [--formats text,json] [--timeout 600] [--workdir benchmarks/out]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DTS = ROOT / "examples" / "dom0less-three-domus.dts"
SCRIPT = ROOT / ".venv" / "bin" / "evtchn-spec"

# (caller, port) of every static end in the example, and the peer it raises
ENDS = [(1, 10), (2, 11), (1, 12), (3, 13), (3, 6), (2, 7)]


def trace(n: int, seed: int = 1) -> str:
    """A trace of n calls, written one call a line (as a recorder would)."""
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        r = rng.random()
        caller, port = rng.choice(ENDS)
        if r < 0.6:
            call = {"caller": caller, "op": "send", "args": {"port": port}}
        elif r < 0.75:
            call = {"caller": caller, "op": "clear", "args": {"port": port}}
        elif r < 0.82:
            call = {"caller": caller, "op": rng.choice(("mask", "unmask")),
                    "args": {"port": port}}
        elif r < 0.9:
            call = {"caller": caller, "op": "status", "args": {"dom": 0x7FF0, "port": port}}
        elif r < 0.95:
            call = {"caller": caller, "op": "alloc_unbound", "args": {"remote_dom": 0}}
        else:
            call = {"caller": caller, "op": "close", "args": {"port": rng.randint(1, 40)}}
        lines.append(json.dumps(call))
    return '{"format": 1, "calls": [\n' + ",\n".join(lines) + "\n]}\n"


def measure(cmd: list[str], timeout: float) -> tuple[float, float, float] | None:
    """(wall seconds, CPU seconds, peak RSS MiB) of one whole process, or None on
    timeout/failure. CPU time (user + system) is the figure to compare on a shared
    machine, where wall time also counts the waits for a core."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = start + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            wall = time.perf_counter() - start
            if os.waitstatus_to_exitcode(status) not in (0, 1):
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                print(f"  failed: {' '.join(cmd)}: {err.strip()[:200]}", file=sys.stderr)
                return None
            return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024
        if time.perf_counter() > deadline:
            proc.kill()
            proc.wait()
            return None
        time.sleep(0.01)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="1000,10000,100000,1000000")
    ap.add_argument("--formats", default="text,json")
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--workdir", default=str(ROOT / "benchmarks" / "out"))
    args = ap.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in args.sizes.split(",")]
    formats = args.formats.split(",")
    print("| calls | trace size | format | wall (s) | CPU (s) | CPU µs per call "
          "| peak RSS (MiB) |")
    print("|---:|---:|---|---:|---:|---:|---:|")
    for n in sizes:
        path = work / f"trace-{n}.json"
        if not path.exists():
            path.write_text(trace(n))
        size = path.stat().st_size / (1 << 20)
        for fmt in formats:
            got = measure([str(SCRIPT), "run", str(DTS), str(path), "--format", fmt],
                          args.timeout)
            if got is None:
                print(f"| {n:,} | {size:.1f} MiB | {fmt} | > {args.timeout:.0f} | | | |")
            else:
                wall, cpu, rss = got
                print(f"| {n:,} | {size:.1f} MiB | {fmt} | {wall:.2f} | {cpu:.2f} | "
                      f"{cpu / n * 1e6:.1f} | {rss:.0f} |")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
