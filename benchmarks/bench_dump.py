"""Time `evtchn-spec dump --format dtb` against `dtc -I dts -O dtb` on generated trees.

Whole-process wall time (median of --runs) and peak RSS of each process, in one
run, so the ratios compare like with like. Prints a Markdown table for the README.

Usage: python benchmarks/bench_dump.py [--sizes s1,s2,s3,s4] [--runs 3]
       [--dtc-timeout 120] [--workdir benchmarks/out] [--no-bytecode-cache]

Our processes run with a bytecode cache (in the work dir), as after `pip install`,
unless --no-bytecode-cache; the first size gets one untimed warm-up run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gen_dts import generate

SIZES = {  # name: (domains, channels)
    "s1": (4, 8),
    "s2": (64, 1_000),
    "s3": (512, 10_000),
    "s4": (2_048, 100_000),
}


def run(cmd: list[str], timeout: float, env: dict[str, str] | None = None
        ) -> tuple[float, float] | None:
    """(wall seconds, peak RSS MiB) of one whole process, or None on timeout/failure."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    deadline = start + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            wall = time.perf_counter() - start
            if os.waitstatus_to_exitcode(status) != 0:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                print(f"  failed: {' '.join(cmd)}: {err.strip()[:200]}", file=sys.stderr)
                return None
            return wall, usage.ru_maxrss / 1024
        if time.perf_counter() > deadline:
            proc.kill()
            proc.wait()
            return None
        time.sleep(0.005)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="s1,s2,s3,s4")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dtc-timeout", type=float, default=120.0)
    ap.add_argument("--workdir", default=str(Path(__file__).resolve().parent / "out"))
    ap.add_argument("--no-bytecode-cache", action="store_true",
                    help="run as the environment says (with PYTHONDONTWRITEBYTECODE=1 every "
                    "process compiles the project's modules again, ~30 ms)")
    a = ap.parse_args()
    work = Path(a.workdir)
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    if not a.no_bytecode_cache:
        # as after `pip install`, which compiles the bytecode once; kept out of the tree
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    # The console script next to this interpreter: a version-manager shim found on
    # PATH (pyenv's adds ~0.15 s) would be timed along with us.
    script = Path(sys.executable).parent / "evtchn-spec"
    tool = str(script) if script.exists() else shutil.which("evtchn-spec")
    ours = [tool] if tool else [sys.executable, "-m", "evtchn_spec.cli"]
    rows = []
    for name in a.sizes.split(","):
        d, c = SIZES[name]
        src = work / f"{name}.dts"
        if not src.exists():
            src.write_text(generate(d, c, seed=1))
        ours_t, dtc_t = [], []
        cmd = [*ours, "dump", "--format", "dtb", "-o", str(work / f"{name}.ours.dtb"), str(src)]
        if name == a.sizes.split(",")[0]:
            run(cmd, 600, env)  # warm-up: bytecode and lark's grammar cache
        for _ in range(a.runs):
            r = run(cmd, 600, env)
            if r:
                ours_t.append(r)
            r = run(["dtc", "-q", "-I", "dts", "-O", "dtb", "-o", str(work / f"{name}.dtc.dtb"),
                     str(src)], a.dtc_timeout)
            if r:
                dtc_t.append(r)
        same = None
        if ours_t and dtc_t:
            ours_dtb = (work / f"{name}.ours.dtb").read_bytes()
            same = ours_dtb == (work / f"{name}.dtc.dtb").read_bytes()

        def med(xs: list[tuple[float, float]], i: int) -> float | None:
            return statistics.median(x[i] for x in xs) if xs else None

        rows.append((name, d, c, src.stat().st_size, med(ours_t, 0), med(ours_t, 1),
                     med(dtc_t, 0), med(dtc_t, 1), same))
        print(f"{name}: done", file=sys.stderr)

    def f(x: float | None, fmt: str) -> str:
        return "-" if x is None else format(x, fmt)

    print("| size | domains | channels | DTS bytes | evtchn-spec s | evtchn-spec MiB "
          "| dtc s | dtc MiB | ratio (ours/dtc) | identical DTB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, d, c, size, ot, om, dt, dm, same in rows:
        ratio = f(ot / dt, ".2f") if ot and dt else (f"dtc > {a.dtc_timeout:.0f} s" if ot else "-")
        ident = "-" if same is None else ("yes" if same else "NO")
        print(f"| {name} | {d:,} | {c:,} | {size:,} | {f(ot, '.2f')} | {f(om, '.0f')} "
              f"| {f(dt, '.2f')} | {f(dm, '.0f')} | {ratio} | {ident} |")


if __name__ == "__main__":
    main()
