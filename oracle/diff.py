"""`evtchn-spec diff --impl CMD`: another implementation against the oracle.

The implementation under test is run as a command (spec/oracle.md, "The diff
protocol"), once per vector for `boot` and once more for `run` when the vector has
a trace. Only the normative fields are compared; each difference names the case,
the document, the call, the domain, the port and the field, with both values.
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
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .vectors import Case

# The random suite's defaults (here, not in vectors.py, so building the CLI's parser
# imports nothing heavy: this module is imported by every `evtchn-spec` run).
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


def error_line(command: str, exc: VectorsError) -> str:
    """The one stderr line for `exc`: `PATH: message`, or `evtchn-spec CMD: message`."""
    return str(exc) if exc.path is not None else f"evtchn-spec {command}: {exc}"


BOOT_PORT_FIELDS = ("status", "remote_dom", "remote_port", "static", "pending", "masked")
RUN_CHANGE_FIELDS = (*BOOT_PORT_FIELDS, "vcpu", "virq", "linked", "abi", "domain")
CALL_FIELDS = ("rc", "port", "out")


class ImplNotRunnable(Exception):
    """The command cannot be started at all (exit 2)."""


@dataclass(frozen=True, slots=True)
class Difference:
    case: str
    doc: str  # "boot" or "run"
    where: str  # e.g. "call 3 (send by d1)", "initial", "final", ""
    domain: str | None
    port: int | None
    field: str
    expected: Any
    got: Any

    def to_json(self) -> dict[str, Any]:
        """An absent value is null, named in `absent` ("expected" or "got")."""
        out = {"case": self.case, "doc": self.doc, "where": self.where, "domain": self.domain,
               "port": self.port, "field": self.field,
               "expected": None if self.expected is _ABSENT else self.expected,
               "got": None if self.got is _ABSENT else self.got}
        if self.expected is _ABSENT or self.got is _ABSENT:
            out["absent"] = "expected" if self.expected is _ABSENT else "got"
        return out

    def text(self) -> str:
        parts = [self.case, self.doc]
        if self.where:
            parts.append(self.where)
        if self.domain is not None:
            parts.append(f"domain {self.domain}")
        if self.port is not None:
            parts.append(f"port {self.port}")
        return (f"{' '.join(parts)}: {self.field}: expected {_show(self.expected)}, "
                f"got {_show(self.got)}")


def _show(v: Any) -> str:
    return "(absent)" if v is _ABSENT else json.dumps(v)


class _Absent:
    def __repr__(self) -> str:
        return "(absent)"


_ABSENT: Any = _Absent()


@dataclass(slots=True)
class CaseResult:
    case: str
    differences: list[Difference] = field(default_factory=list)
    error: str | None = None  # the implementation failed to answer (crash, bad JSON, timeout)
    calls: int = 0

    @property
    def status(self) -> str:
        return "error" if self.error else "differ" if self.differences else "agree"


# -- comparing documents (normative fields only) ------------------------------------------

def _ports(doc: dict[str, Any], domid: str) -> dict[Any, dict[str, Any]]:
    dom = (doc.get("domains") or {}).get(domid) or {}
    return {p.get("port"): p for p in dom.get("ports", []) if isinstance(p, dict)}


def boot_differences(case: str, doc: str, where: str, exp: dict[str, Any],
                     got: dict[str, Any]) -> list[Difference]:
    """outcome; on a panic `error` and `panic`; on a boot the set of domains and every
    port with its status, remote_dom, remote_port, static, pending and masked."""
    out: list[Difference] = []

    def d(field_: str, e: Any, g: Any, dom: str | None = None, port: int | None = None) -> None:
        out.append(Difference(case, doc, where, dom, port, field_, e, g))

    if exp.get("outcome") != got.get("outcome", _ABSENT):
        d("outcome", exp.get("outcome"), got.get("outcome", _ABSENT))
        return out
    if exp.get("outcome") == "panic":
        for k in ("error", "panic"):
            if exp.get(k) != got.get(k, _ABSENT):
                d(k, exp.get(k), got.get(k, _ABSENT))
        return out
    ed, gd = exp.get("domains") or {}, got.get("domains") or {}
    if not isinstance(gd, dict):
        d("domains", "an object", gd)
        return out
    for domid in sorted(set(ed) | set(gd), key=lambda s: (len(s), s)):
        if domid not in gd:
            d("domain", "present", _ABSENT, domid)
            continue
        if domid not in ed:
            d("domain", _ABSENT, "present", domid)
            continue
        ep, gp = _ports(exp, domid), _ports(got, domid)
        for port in sorted(set(ep) | set(gp), key=lambda p: (not isinstance(p, int), str(p))):
            if port not in gp:
                d("port", _brief(ep[port]), _ABSENT, domid, port)
            elif port not in ep:
                d("port", _ABSENT, _brief(gp[port]), domid, port)
            else:
                for f in BOOT_PORT_FIELDS:
                    if ep[port].get(f) != gp[port].get(f):
                        d(f, ep[port].get(f, _ABSENT), gp[port].get(f, _ABSENT), domid, port)
    return out


def _brief(p: dict[str, Any]) -> dict[str, Any]:
    return {f: p[f] for f in BOOT_PORT_FIELDS if f in p}


def _change_key(c: dict[str, Any]) -> tuple[Any, ...] | None:
    """A normative change as (dom, port, field, from, to); vCPU-level changes are not."""
    if not isinstance(c, dict) or c.get("field") not in RUN_CHANGE_FIELDS:
        return None
    if "port" not in c and c.get("field") not in ("abi", "domain"):
        return None
    return (c.get("dom"), c.get("port"), c.get("field"), json.dumps(c.get("from")),
            json.dumps(c.get("to")))


def run_differences(case: str, exp: dict[str, Any], got: dict[str, Any]) -> list[Difference]:
    """initial and final as boot; per call rc, port, out, and the set of normative changes."""
    out = boot_differences(case, "run", "initial", exp.get("initial") or {},
                           got.get("initial") or {})
    ec, gc = exp.get("calls") or [], got.get("calls") or []
    if len(ec) != len(gc):
        out.append(Difference(case, "run", "", None, None, "number of calls", len(ec), len(gc)))
    for i, (a, b) in enumerate(zip(ec, gc, strict=False)):
        where = f"call {i} ({a.get('op')} by d{a.get('caller')})"
        for f in CALL_FIELDS:
            if a.get(f, _ABSENT) != b.get(f, _ABSENT):
                out.append(Difference(case, "run", where, None, None, f, a.get(f, _ABSENT),
                                      b.get(f, _ABSENT)))
        ea = {k for k in map(_change_key, a.get("changes", [])) if k}
        gb = {k for k in map(_change_key, b.get("changes", []) or []) if k}
        for k in sorted(ea - gb, key=repr):
            out.append(Difference(case, "run", where, _dom(k[0]), k[1], f"change {k[2]}",
                                  f"{k[3]} -> {k[4]}", _ABSENT))
        for k in sorted(gb - ea, key=repr):
            out.append(Difference(case, "run", where, _dom(k[0]), k[1], f"change {k[2]}",
                                  _ABSENT, f"{k[3]} -> {k[4]}"))
    ef, gf = exp.get("final"), got.get("final")
    if (ef is None) != (gf is None):
        out.append(Difference(case, "run", "final", None, None, "final",
                              "null" if ef is None else "a state",
                              "null" if gf is None else "a state"))
    elif ef is not None and gf is not None:
        out += boot_differences(case, "run", "final", dict(ef, outcome="booted"),
                                dict(gf, outcome="booted"))
    return out


def _dom(v: Any) -> str | None:
    return None if v is None else str(v)


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
    res.differences += boot_differences(case_id, "boot", "", *pair)
    if (cdir / "trace.json").is_file():
        pair = _call(impl, res, "run", run_argv(dtb, cdir / "trace.json", meta),
                     cdir / "run.json")
        if pair is None:
            return res
        res.differences += run_differences(case_id, *pair)
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
    from .vectors import is_vectors_dir

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
    from .vectors import _random_cases, _user_cases, write_suites

    suites: dict[str, list[Case]] = {}
    if files:
        suites["files"] = list(_user_cases(files, "files", dialect, xen))
    if random_n:
        suites["random"] = list(_random_cases(random_n, seed))
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
