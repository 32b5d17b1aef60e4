"""`evtchn-spec diff --impl CMD`: another implementation against the oracle.

The implementation under test is run as a command (spec/oracle.md, "The diff
protocol"), once per vector for `boot` and once more for `run` when the vector has
a trace. Only the normative fields are compared (oracle/compare.py, the profile
DIFF_PROTOCOL); each difference names the case, the document, the call, the domain,
the port and the field, with both values.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .common import INDEX, ImplNotRunnable, VectorsError
from .compare import DIFF_PROTOCOL, Difference, compare_boot, compare_run
from .vectors import Case, is_vectors_dir, random_cases, user_cases, write_suites


@dataclass(slots=True)
class CaseResult:
    case: str
    differences: list[Difference] = field(default_factory=list)
    error: str | None = None  # the implementation failed to answer (crash, bad JSON, timeout)
    calls: int = 0

    @property
    def status(self) -> str:
        return "error" if self.error else "differ" if self.differences else "agree"


# -- running the implementation ----------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Impl:
    argv: list[str]
    timeout: float

    def call(self, args: list[str]) -> tuple[dict[str, Any] | None, str | None]:
        """(the JSON document it printed, None) or (None, why it gave no usable answer)."""
        try:
            proc = subprocess.run([*self.argv, *args], capture_output=True, timeout=self.timeout,
                                  check=False)
        except (FileNotFoundError, PermissionError, NotADirectoryError) as exc:
            raise ImplNotRunnable(f"{self.argv[0]}: cannot run the implementation "
                                  f"({exc.strerror or exc})") from None
        except subprocess.TimeoutExpired:
            return None, f"timed out after {self.timeout:g} s"
        if proc.returncode not in (0, 1):
            last = proc.stderr.decode(errors="replace").strip().splitlines()
            return None, f"exited {proc.returncode}" + (f": {last[-1]}" if last else "")
        try:
            doc = json.loads(proc.stdout)
        except ValueError as exc:
            return None, f"stdout is not JSON ({exc})"
        if not isinstance(doc, dict):
            return None, "stdout is not a JSON object"
        return doc, None


def boot_argv(dtb: Path, meta: dict[str, Any]) -> list[str]:
    return ["boot", str(dtb), "--format", "json", "--dialect", meta.get("dialect", "auto"),
            "--xen", meta.get("xen", "4.17")]


def run_argv(dtb: Path, trace: Path, meta: dict[str, Any]) -> list[str]:
    return ["run", str(dtb), str(trace), "--format", "json",
            "--dialect", meta.get("dialect", "auto"), "--xen", meta.get("xen", "4.17"),
            "--xsm", meta.get("xsm", "silo")]


def diff_case(impl: Impl, vdir: Path, case_id: str) -> CaseResult:
    cdir = vdir / case_id
    res = CaseResult(case_id)
    meta = json.loads((cdir / "meta.json").read_text(encoding="utf-8"))
    dtb = cdir / "input.dtb"
    pair = _call(impl, res, "boot", boot_argv(dtb, meta), cdir / "boot.json")
    if pair is None:
        return res
    res.differences += compare_boot(*pair, DIFF_PROTOCOL, case=case_id)
    if (cdir / "trace.json").is_file():
        pair = _call(impl, res, "run", run_argv(dtb, cdir / "trace.json", meta),
                     cdir / "run.json")
        if pair is None:
            return res
        res.differences += compare_run(*pair, DIFF_PROTOCOL, case=case_id)
    return res


def _call(impl: Impl, res: CaseResult, what: str, argv: list[str], expected: Path
          ) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """One call of the implementation, counted: (expected, got), or None with the
    failure in res.error."""
    got, err = impl.call(argv)
    res.calls += 1
    if err is not None:
        res.error = f"{what}: {err}"
        return None
    assert got is not None
    return json.loads(expected.read_text(encoding="utf-8")), got


def case_ids(vdir: Path, suites: list[str] | None) -> list[str]:
    if not is_vectors_dir(vdir):
        raise VectorsError(f"not a vectors directory (no {INDEX} written by "
                           "`evtchn-spec vectors`)", vdir)
    index = json.loads((vdir / INDEX).read_text(encoding="utf-8"))
    ids = [e["id"] for e in index.get("cases", [])
           if not suites or e.get("suite") in suites]
    missing = [i for i in ids if not (vdir / i / "meta.json").is_file()]
    if missing:
        raise VectorsError(f"case {missing[0]} is listed in {INDEX} but missing", vdir)
    return ids


def run_diff(impl: Impl, vdir: Path, ids: list[str], jobs: int) -> list[CaseResult]:
    if not ids:
        return []
    # the first call alone, so a command that cannot start is one clear error
    first = diff_case(impl, vdir, ids[0])
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        rest = list(pool.map(lambda i: diff_case(impl, vdir, i), ids[1:]))
    return [first, *rest]


def materialise(files: list[str], random_n: int, seed: int, dialect: str, xen: str,
                tmp: Path) -> Path:
    """FILEs and/or random configs written as a vectors directory under tmp."""
    suites: dict[str, list[Case]] = {}
    if files:
        suites["files"] = list(user_cases(files, "files", dialect, xen))
    if random_n:
        suites["random"] = list(random_cases(random_n, seed))
    out = tmp / "vectors"
    write_suites(out, suites)
    return out


def report_text(results: list[CaseResult], cmd: str) -> Iterator[str]:
    for r in results:
        if r.error:
            yield f"ERROR {r.case}: the implementation gave no answer: {r.error}"
        for d in r.differences:
            yield f"DIFF {d.text()}"
    yield summary_line(results, cmd)


def summary_line(results: list[CaseResult], cmd: str) -> str:
    agree = sum(1 for r in results if r.status == "agree")
    differ = sum(1 for r in results if r.status == "differ")
    errors = sum(1 for r in results if r.status == "error")
    ndiff = sum(len(r.differences) for r in results)
    calls = sum(r.calls for r in results)
    return (f"{cmd}: {len(results)} cases, {calls} calls: {agree} agree, {differ} differ "
            f"({ndiff} differences), {errors} gave no answer")


def report_json(results: list[CaseResult], cmd: str) -> dict[str, Any]:
    return {
        "format": 1, "impl": cmd,
        "summary": {s: sum(1 for r in results if r.status == s)
                    for s in ("agree", "differ", "error")} | {"cases": len(results)},
        "cases": [{"case": r.case, "status": r.status, "error": r.error,
                   "differences": [d.to_json() for d in r.differences]}
                  for r in results],
    }


def _json_safe(doc: Any) -> Any:
    return json.loads(json.dumps(doc, default=repr))


def main_diff(cmd: str, vectors: str | None, files: list[str], random_n: int, seed: int,
              timeout: float, fmt: str, suites: list[str] | None, dialect: str, xen: str,
              jobs: int) -> tuple[int, str]:
    """(exit code, report text) for the `diff` subcommand."""
    argv = shlex.split(cmd)
    if not argv:
        raise VectorsError("--impl: an empty command")
    if not vectors and not files and not random_n:
        raise VectorsError("nothing to compare: give --vectors DIR, FILE..., or --random N")
    impl = Impl(argv, timeout)
    results: list[CaseResult] = []
    if vectors:
        vdir = Path(vectors)
        results += run_diff(impl, vdir, case_ids(vdir, suites), jobs)
    if files or random_n:
        with tempfile.TemporaryDirectory(prefix="evtchn-diff-") as tmp:
            vdir = materialise(files, random_n, seed, dialect, xen, Path(tmp))
            results += run_diff(impl, vdir, case_ids(vdir, None), jobs)
    if fmt == "json":
        text = json.dumps(_json_safe(report_json(results, cmd)), indent=1) + "\n"
    else:
        text = "\n".join(report_text(results, cmd)) + "\n"
    bad = any(r.status != "agree" for r in results)
    return (1 if bad else 0), text
