"""Benchmark: every costly subcommand side by side, on valid and on broken trees.

For each kind of tree (valid: gen_dts.py; broken: gen_broken.py, every port redrawn
from 1..4095, so most are out of range) and each size (1k: 64 domains, 1,000
channels; 10k: 512, 10,000; 100k: 2,048, 100,000), one whole process each of
`dump --format dtb`, `check`, `boot --format json`, `prove --orders off` and `fix`, the
console script itself (the `evtchn-spec` beside this interpreter), and dtc on the same
file where it applies (dtc is quadratic in labels: 100k takes it about an hour, so it
runs up to --dtc-max channels). Wall seconds and the peak RSS of that one process
(os.wait4), and the ratios the goals are stated in: check/dump and boot/dump (goal
2x), prove/check (goal 5x). One run of everything, in one sitting: compare the
figures of one table only, the host is shared.

Usage: python benchmarks/bench_all.py [--sizes 1k,10k,100k] [--kinds valid,broken]
       [--dtc-max 10000] [--dir DIR] [--skip fix]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = {"1k": (64, 1000), "10k": (512, 10000), "100k": (2048, 100000)}
HERE = Path(__file__).resolve().parent
EXE = Path(sys.executable).with_name("evtchn-spec")


def timed(cmd: list[str]) -> tuple[float, float, int]:
    """Wall seconds, peak RSS (MiB) of this one child, its exit code."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_maxrss / 1024, proc.returncode


def tree(work: Path, kind: str, size: str) -> Path:
    domains, channels = SIZES[size]
    path = work / f"{kind}-{size}.dts"
    if not path.exists():
        gen = "gen_dts.py" if kind == "valid" else "gen_broken.py"
        subprocess.run([sys.executable, str(HERE / gen), "--domains", str(domains),
                        "--channels", str(channels), "--seed", "1", "-o", str(path)],
                       check=True)
    return path


def cell(got: dict[str, tuple[float, float, int]], name: str) -> str:
    if name not in got:
        return "-"
    wall, peak, rc = got[name]
    return f"{wall:.2f} s / {peak:.0f} MiB" + ("" if rc in (0, 1) else f" (rc {rc})")


def ratio(got: dict[str, tuple[float, float, int]], a: str, b: str) -> str:
    return f"{got[a][0] / got[b][0]:.2f}x" if a in got and b in got else "-"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1k,10k,100k")
    ap.add_argument("--kinds", default="valid,broken")
    ap.add_argument("--dtc-max", type=int, default=10000)
    ap.add_argument("--dir", default=None, help="where to keep the generated trees")
    ap.add_argument("--skip", default="", help="subcommands not to run (comma-separated)")
    args = ap.parse_args()
    if not EXE.exists():
        print(f"bench_all.py: no console script at {EXE} (run with the project's "
              ".venv/bin/python)", file=sys.stderr)
        return 2
    skip = set(filter(None, args.skip.split(",")))
    work = Path(args.dir or tempfile.mkdtemp(prefix="bench_all_"))
    work.mkdir(parents=True, exist_ok=True)
    dtc = shutil.which("dtc")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, trees in {work}")
    print("| tree | channels | dtc | dump --format dtb | check | boot --format json "
          "| prove --orders off | fix | check/dump | boot/dump | prove/check |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for kind in args.kinds.split(","):
        for size in args.sizes.split(","):
            path = tree(work, kind, size)
            out = work / "out"
            channels = SIZES[size][1]
            cmds = {
                "dump": [str(EXE), "dump", str(path), "--format", "dtb", "-o", str(out)],
                "check": [str(EXE), "check", str(path)],
                "boot": [str(EXE), "boot", str(path), "--format", "json"],
                "prove": [str(EXE), "prove", str(path), "--orders", "off"],
                "fix": [str(EXE), "fix", str(path), "-o", str(work / "fixed.dts")],
            }
            got: dict[str, tuple[float, float, int]] = {}
            if dtc and channels <= args.dtc_max and "dtc" not in skip:
                got["dtc"] = timed([dtc, "-q", "-I", "dts", "-O", "dtb", "-o", str(out),
                                    str(path)])
            for name, cmd in cmds.items():
                if name not in skip:
                    got[name] = timed(cmd)

            cells = " | ".join(cell(got, n) for n in ("dtc", "dump", "check", "boot", "prove",
                                                        "fix"))
            ratios = " | ".join(ratio(got, a, b) for a, b in (("check", "dump"),
                                                            ("boot", "dump"),
                                                            ("prove", "check")))
            print(f"| {kind} | {channels:,} | {cells} | {ratios} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
