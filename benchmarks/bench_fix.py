"""Benchmark: `evtchn-spec fix` on broken trees, before and after, in one run.

Trees: benchmarks/gen_broken.py (gen_dts.py's valid trees with every port cell redrawn
from 1..4095, seeded) at f1 (4 domains, 8 channels), f2 (64, 1,000) and f3 (512,
10,000). "after" is the console script of this checkout (`.venv/bin/evtchn-spec fix`);
"before" is the same package with proofs/repair.py taken from the revision --before
(git show), run as `python -c 'from evtchn_spec.cli import main'`, which is what the
console script does. Each run is a whole process; the table gives wall seconds, CPU
seconds (user + system) and peak RSS of that process alone (os.wait4), the exit code
and the number of changes fix reports. A run past --cap seconds is stopped and shown
as such.

Usage: python benchmarks/bench_fix.py [--sizes f1,f2,f3] [--before REV] [--cap S]
       [--zeros F] [--dir DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = {"f1": (4, 8), "f2": (64, 1000), "f3": (512, 10000)}
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# The last revision whose repair searched with Optimize over the whole domain.
BEFORE = "0241a82"
# evtchn_spec's source folders (pyproject.toml's package-dir)
LAYOUT = {"": "refimpl", "grammar": "grammar", "proofs": "proofs",
          "conformance": "conformance", "cases": "tests/data"}


def overlay(rev: str, into: Path) -> Path:
    """A copy of the package with proofs/repair.py as it was at `rev`."""
    pkg = into / "evtchn_spec"
    shutil.copytree(ROOT / "refimpl", pkg, ignore=shutil.ignore_patterns("__pycache__"))
    for sub, src in LAYOUT.items():
        if sub:
            shutil.copytree(ROOT / src, pkg / sub, ignore=shutil.ignore_patterns(
                "__pycache__", "corpus"))
    old = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:proofs/repair.py"],
                         check=True, capture_output=True, text=True).stdout
    (pkg / "proofs" / "repair.py").write_text(old)
    return into


def run(cmd: list[str], env: dict[str, str], cap: float) -> tuple[float, float, int, int | None,
                                                                   str]:
    """Wall s, CPU s, peak RSS KiB, exit code (None if stopped at the cap), stderr."""
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env,
                             start_new_session=True)
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - t0 > cap:
                os.killpg(p.pid, signal.SIGKILL)
                pid, status, ru = os.wait4(p.pid, 0)
                break
            time.sleep(0.05)
        wall = time.perf_counter() - t0
        p.returncode = 0  # reaped above
        err.seek(0)
        text = err.read().decode("utf-8", "replace")
    rc = os.waitstatus_to_exitcode(status)
    return wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss, (None if rc < 0 else rc), text


def changes(stderr: str) -> str:
    for line in stderr.splitlines():
        if line.startswith("fix: ") and "port change(s)" in line:
            return line.split()[1]
    return "-"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", default="f1,f2,f3")
    ap.add_argument("--before", default=BEFORE, help="revision of proofs/repair.py to "
                    "compare with (default %(default)s)")
    ap.add_argument("--cap", type=float, default=600.0, help="stop a run after S seconds")
    ap.add_argument("--zeros", type=float, default=0.0, help="see gen_broken.py")
    ap.add_argument("--dir", default=None, help="where to keep generated trees")
    args = ap.parse_args()
    work = Path(args.dir or tempfile.mkdtemp(prefix="bench_fix_"))
    work.mkdir(parents=True, exist_ok=True)
    before_root = overlay(args.before, Path(tempfile.mkdtemp(prefix="bench_fix_before_")))
    script = Path(sys.executable).parent / "evtchn-spec"
    after_cmd = [str(script)] if script.exists() else [sys.executable, "-c",
                                                       "import sys; from evtchn_spec.cli "
                                                       "import main; sys.exit(main())"]
    before_cmd = [sys.executable, "-c",
                  "import sys; from evtchn_spec.cli import main; sys.exit(main())"]
    env_after = dict(os.environ)
    env_before = dict(os.environ, PYTHONPATH=str(before_root))
    print("| size | channels | version | wall s | CPU s | peak MiB | exit | changes |")
    print("|---|---|---|---|---|---|---|---|")
    try:
        for name in args.sizes.split(","):
            d, c = SIZES[name]
            path = work / f"{name}-z{args.zeros}.dts"
            if not path.exists():
                subprocess.run([sys.executable, str(HERE / "gen_broken.py"), "--domains",
                                str(d), "--channels", str(c), "--seed", "1", "--zeros",
                                str(args.zeros), "-o", str(path)], check=True)
            for label, cmd, env in (("before", before_cmd, env_before),
                                    ("after", after_cmd, env_after)):
                out = work / f"{name}.{label}.fixed.dts"
                wall, cpu, rss, rc, err = run([*cmd, "fix", str(path), "-o", str(out)], env,
                                              args.cap)
                code = "stopped" if rc is None else str(rc)
                shown = f"> {args.cap:.0f}" if rc is None else f"{wall:.2f}"
                print(f"| {name} | {c:,} | {label} | {shown} | {cpu:.2f} | {rss / 1024:.0f} "
                      f"| {code} | {changes(err)} |", flush=True)
    finally:
        shutil.rmtree(before_root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
