"""Record the conformance corpus: what each real Xen release does with every case.

    python -m evtchn_spec.conformance.corpus [DIR] [--xen V[,V...] | --all] [--missing]
                                             [CASE ...]

DIR defaults to tests/data/xen.  For every CASE.dts there (or only the named
cases) it boots the tree on each asked release under QEMU (default: 4.17
only; --all: every release whose hypervisor is in the cache; --missing: only the
cases the index does not list for that release yet) and, when
CASE.trace.json exists, runs that trace too.

Layout (conformance/README.md, "Corpus"):

* CASE.json / CASE.run.json: what Xen 4.17 did (the base recording);
* releases/V/CASE.json / CASE.run.json: what release V did, kept only when it
  differs from the base in anything a comparison looks at (outcome, error,
  panic, every port; for a trace every call and the final state);
* releases/index.json: for each case, the releases whose run gave the base
  recording ("base") and those with a recording of their own ("own"), and for
  each release the build that ran (banner version, XSM policy).

A case boots a dom0 when its /chosen has a multiboot,kernel module (the
runner replaces every module node with its own guest).
"""

from __future__ import annotations

import fcntl
import json
import sys
from pathlib import Path
from typing import Any

from evtchn_spec.grammar.errors import InputError
from evtchn_spec.oracle.compare import differences, run_differences

from . import dtbuild, fdt, qemu, report, trace
from .tools import RELEASES, Tools, ToolsMissing, available_releases, cache_dir, find_tools

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "tests" / "data" / "xen"
BASE_RELEASE = "4.17"
TIMEOUT = 120.0
SLOT_MS = 300


def run_case(tools: Tools, dts: Path) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(boot JSON, run JSON or None) for one case file."""
    user = fdt.parse(dtbuild.compile_source(str(dts), dtc=tools.dtc))
    dom0 = dtbuild.has_dom0_kernel(user)
    res = qemu.boot(tools, user, dom0=dom0, timeout=TIMEOUT, source=str(dts))
    boot = report.boot_json(res.console, res.plan, res.reason, xen_version=tools.xen_version,
                            build=_build(tools, res.console))
    tpath = dts.with_name(dts.stem + ".trace.json")
    run: dict[str, Any] | None = None
    if tpath.is_file():
        calls = trace.load(str(tpath))
        commands, nslots = trace.schedule(calls)
        # A loaded host can wake a guest late for its slot (the runner then retries
        # and, failing that, lists the slot under "incomplete"); the result does not
        # depend on the slot length, so longer slots are tried before giving up.
        for slot_ms in (SLOT_MS, SLOT_MS * 2, SLOT_MS * 4):
            tres = qemu.boot(tools, user, dom0=dom0,
                             timeout=TIMEOUT + nslots * slot_ms / 1000, source=str(dts),
                             commands=commands, slot_ms=slot_ms, nslots=nslots)
            tboot = report.boot_json(tres.console, tres.plan, tres.reason,
                                     xen_version=tools.xen_version,
                                     build=_build(tools, tres.console))
            run = trace.run_json(tres.console, tres.plan, tboot, calls)
            if not run.get("incomplete"):
                break
    return boot, run


def _build(tools: Tools, console: list[str]) -> dict[str, Any]:
    """What ran, without the machine-specific image path (recordings are committed)."""
    b = report.build_json(console, release=tools.release, source=tools.xen_source,
                          package=tools.xen_version, image="")
    b.pop("image")
    b.pop("banner")  # holds the build date of a local build: not a property of the release
    return b


def dump(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=1) + "\n"


def index_path(folder: Path) -> Path:
    return folder / "releases" / "index.json"


def load_index(folder: Path) -> dict[str, Any]:
    path = index_path(folder)
    if path.is_file():
        doc: dict[str, Any] = json.loads(path.read_text())
        return doc
    return {"format": 1, "base": BASE_RELEASE, "releases": {}, "cases": {}}


def recording(folder: Path, case: str, release: str, *, run: bool = False
              ) -> dict[str, Any] | None:
    """What RELEASE did with CASE (its own recording, else the base one when the index
    says the release gave that), or None when the case was not recorded on it."""
    suffix = ".run.json" if run else ".json"
    own = folder / "releases" / release / (case + suffix)
    if own.is_file():
        doc: dict[str, Any] = json.loads(own.read_text())
        return doc
    entry = load_index(folder)["cases"].get(case, {})
    if release == BASE_RELEASE or release in entry.get("base", []):
        base = folder / (case + suffix)
        if base.is_file():
            doc = json.loads(base.read_text())
            return doc
    return None


# What each guest saw beyond its ports, that a release may change: its own device
# tree's evtchn nodes and Xen node, its xenstore parameters, its port range.
OBSERVED_KEYS = ("dt_evtchn_nodes", "dt_hypervisor_node", "store_pfn", "store_evtchn",
                 "valid_ports")


def observed_view(doc: dict[str, Any]) -> dict[str, Any]:
    """The part of `observed` a release can change (OBSERVED_KEYS per guest)."""
    boot = doc.get("initial", doc)
    guests = boot.get("observed", {}).get("guests", {})
    return {d: {k: g.get(k) for k in OBSERVED_KEYS} for d, g in guests.items()}


def _same(a: dict[str, Any], b: dict[str, Any] | None, *, run: bool) -> bool:
    if b is None:
        return False
    if observed_view(a) != observed_view(b):
        return False
    return not (run_differences(a, b) if run else differences(a, b))


def record(folder: Path, release: str, dts: Path, boot: dict[str, Any],
           run: dict[str, Any] | None) -> str:
    """Store one release's result for one case; returns "base" (the same as the base
    recording: nothing stored for the release) or "own"."""
    case = dts.stem
    own_dir = folder / "releases" / release
    if release == BASE_RELEASE:
        dts.with_suffix(".json").write_text(dump(boot))
        if run is not None:
            dts.with_name(case + ".run.json").write_text(dump(run))
        kind = "base"
    else:
        base_boot = recording(folder, case, BASE_RELEASE)
        base_run = recording(folder, case, BASE_RELEASE, run=True)
        same = _same(boot, base_boot, run=False) and (
            run is None or _same(run, base_run, run=True))
        for suffix in (".json", ".run.json"):
            (own_dir / (case + suffix)).unlink(missing_ok=True)
        if same:
            kind = "base"
        else:
            own_dir.mkdir(parents=True, exist_ok=True)
            (own_dir / (case + ".json")).write_text(dump(boot))
            if run is not None:
                (own_dir / (case + ".run.json")).write_text(dump(run))
            kind = "own"
    return kind


def merge_index(folder: Path, release: str, kinds: dict[str, str],
                build: dict[str, Any] | None) -> None:
    """Enter one release's results (case -> "base"/"own") into releases/index.json,
    under a lock: recorders of different releases may run at the same time. The lock
    file lives in the cache, never among the recordings."""
    path = index_path(folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    cache_dir().mkdir(parents=True, exist_ok=True)
    with open(cache_dir() / "corpus-index.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        index = load_index(folder)
        if build is not None:
            index["releases"][release] = build
        for case, kind in kinds.items():
            entry = index["cases"].setdefault(case, {"base": [], "own": []})
            for key in ("base", "own"):
                if release in entry[key]:
                    entry[key].remove(release)
            entry[kind].append(release)
            entry[kind].sort(key=lambda r: RELEASES.index(r) if r in RELEASES else 99)
        index["cases"] = dict(sorted(index["cases"].items()))
        index["releases"] = dict(sorted(
            index["releases"].items(),
            key=lambda kv: RELEASES.index(kv[0]) if kv[0] in RELEASES else 99))
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(index, indent=1) + "\n")
        tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    folder = Path(args.pop(0)) if args and Path(args[0]).is_dir() else DEFAULT_DIR
    releases = [BASE_RELEASE]
    rest: list[str] = []
    missing_only = False  # --missing: skip what the index already has for a release
    while args:
        a = args.pop(0)
        if a == "--missing":
            missing_only = True
        elif a == "--all":
            releases = available_releases()
        elif a == "--xen" and args:
            releases = [r.strip() for r in args.pop(0).split(",") if r.strip()]
        elif a.startswith("--xen="):
            releases = [r.strip() for r in a[len("--xen="):].split(",") if r.strip()]
        else:
            rest.append(a)
    wanted = set(rest)
    # The base goes first: the other releases are compared with it.
    releases.sort(key=lambda r: (r != BASE_RELEASE, RELEASES.index(r) if r in RELEASES else 99))
    cases = sorted(p for p in folder.glob("*.dts") if not wanted or p.stem in wanted)
    failed = 0
    for release in releases:
        try:
            tools = find_tools(release)
        except ToolsMissing as exc:
            print(str(exc), file=sys.stderr)
            return 2
        kinds: dict[str, str] = {}
        seen_build: dict[str, Any] | None = None
        have = load_index(folder)["cases"] if missing_only else {}
        for dts in cases:
            entry = have.get(dts.stem, {})
            if release in entry.get("base", []) + entry.get("own", []):
                continue
            try:
                boot, run = run_case(tools, dts)
            except InputError as exc:
                print(f"{release} {dts.stem}: not recorded: {exc}", flush=True)
                failed += 1
                continue
            if boot["outcome"] == "incomplete" or (run is not None and (
                    run["initial"]["outcome"] == "incomplete" or run.get("incomplete"))):
                print(f"{release} {dts.stem}: not recorded: the run was incomplete "
                      f"({boot.get('detail')})", flush=True)
                failed += 1
                continue
            build = boot["observed"].get("build", {})
            if build.get("banner_version"):
                seen_build = {k: build.get(k) for k in
                              ("banner_version", "xsm", "source", "package_version")}
            kind = kinds[dts.stem] = record(folder, release, dts, boot, run)
            line = f"{release} {dts.stem}: {boot['outcome']}"
            if boot["outcome"] == "panic":
                line += f" ({boot.get('error')!r}, {boot.get('panic')!r})"
            if run is not None:
                line += f", trace of {len(run['calls'])} calls"
            if kind == "own":
                line += f"  [differs from {BASE_RELEASE}]"
            print(line, flush=True)
            if len(kinds) % 10 == 0:
                merge_index(folder, release, kinds, seen_build)
        merge_index(folder, release, kinds, seen_build)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
