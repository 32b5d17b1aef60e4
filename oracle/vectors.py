"""`evtchn-spec vectors DIR`: conformance test vectors for other implementations.

The layout, the files and what an implementation must match are in spec/oracle.md.
Generation is deterministic: the same version writes the same bytes (no
timestamps, sorted keys, a seeded generator), so a consumer can diff two vector
sets or compare the content hashes of index.json.

The built-in suites read the repository's tests/data/ (rules/, xen/, runtime/,
boot/), which is installed with the package as the data package
`evtchn_spec.cases` (pyproject.toml): an editable install reads the checkout's
files and a wheel its own copy, through the same importlib.resources call.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from evtchn_spec import __version__
from evtchn_spec.grammar import load
from evtchn_spec.grammar.dtb import read_dtb, write_dtb
from evtchn_spec.grammar.dts import parse_dts
from evtchn_spec.grammar.tree import Tree
from evtchn_spec.refimpl.boot import boot
from evtchn_spec.refimpl.check import CheckResult, check
from evtchn_spec.refimpl.config import Config, xen_profile
from evtchn_spec.refimpl.policy import Policy
from evtchn_spec.refimpl.runtime import parse_trace, run

from .common import INDEX, RANDOM_CASES, RANDOM_SEED, VectorsError
from .compare import differences, run_differences

ORACLE_FORMAT = 1
XEN_RECORDED = "recorded on real Xen 4.17 (Debian 12 xen-hypervisor-4.17-arm64 {version})"
REFERENCE_ONLY = "reference implementation only"
BUILTIN_SUITES = ("xen", "runtime", "rules", "random")


@dataclass(slots=True)
class Case:
    """One vector before it is written: its inputs, expected outputs and metadata."""

    suite: str
    name: str
    tree: Tree
    dts: str | None
    meta: dict[str, Any]
    trace: str | None = None
    policy: str | None = None
    extra: dict[str, str] = field(default_factory=dict)  # informative files (recordings)


# -- the expected outputs ---------------------------------------------------------------

def json_text(doc: Any) -> str:
    """The one JSON spelling every vector file uses (sorted keys, 1-space indent)."""
    return json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def _config(tree: Tree, dialect: str, xen: str) -> Config:
    return Config.from_tree(tree, xen_profile(xen), dialect)


def expected_boot(tree: Tree, dialect: str, xen: str) -> dict[str, Any]:
    return boot(_config(tree, dialect, xen)).to_json()


def expected_run(tree: Tree, trace: str, dialect: str, xen: str, xsm: str = "silo",
                 trace_name: str = "trace.json") -> dict[str, Any]:
    res = boot(_config(tree, dialect, xen))
    res.state.xsm = xsm
    return run(res, parse_trace(trace, trace_name))


def expected_check(tree: Tree, dialect: str, xen: str, policy: str | None) -> dict[str, Any]:
    """Findings of `check` (with the case's policy.toml, given as its text)."""
    pol = None
    if policy is not None:
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "policy.toml").write_text(policy, encoding="utf-8")
            pol = dataclasses.replace(Policy.load(Path(tmp) / "policy.toml"),
                                      source="policy.toml")
    res: CheckResult = check(_config(tree, dialect, xen), policy=pol)
    findings = sorted(
        ({"rule": f.rule, "severity": f.severity,
          "nodes": sorted({lc.node for lc in f.locations if lc.node}),
          "message": f.message} for f in res.findings),
        key=lambda f: (f["rule"], f["severity"], f["nodes"], f["message"]))
    return {"format": 1, "verdict": res.verdict(), "findings": findings}


# -- the case data (tests/data, shipped as the package evtchn_spec.cases) ------------------

CASES_PACKAGE = "evtchn_spec.cases"
SOURCE_DIR = "tests/data"  # where CASES_PACKAGE lives in the repository (meta.json `source`)


@contextmanager
def case_data() -> Iterator[Path]:
    """The directory of the case data, as a real path (the readers want file names).

    Installed from a wheel or editable, the package is a directory and this is it;
    `as_file` would extract a zipped one (Python 3.12+)."""
    try:
        files = resources.files(CASES_PACKAGE)
    except ModuleNotFoundError:
        raise VectorsError(f"the package {CASES_PACKAGE} (the built-in suites' data) is not "
                           "installed; reinstall evtchn-spec") from None
    with resources.as_file(files) as root:
        yield root


def _read_tree_dts(path: Path) -> tuple[Tree, str]:
    text = path.read_text(encoding="utf-8")
    return load(str(path)), text


def _roundtrip(tree: Tree, name: str) -> Tree:
    """The tree as an implementation reading input.dtb sees it."""
    return read_dtb(write_dtb(tree), name)


# -- suite: xen (recorded on real Xen) and runtime ----------------------------------------

def _recorded_cases(suite: str, folder: Path, warn: Callable[[str], None]) -> Iterator[Case]:
    for dts in sorted(folder.glob("*.dts")):
        recorded_boot = dts.with_suffix(".json")
        trace = folder / f"{dts.stem}.trace.json"
        recorded_run = folder / f"{dts.stem}.run.json"
        if not recorded_boot.is_file() and not recorded_run.is_file():
            continue
        tree, text = _read_tree_dts(dts)
        tree = _roundtrip(tree, f"{dts.stem}.dtb")
        extra: dict[str, str] = {}
        problems: list[str] = []
        version = "?"
        if recorded_boot.is_file():
            xen_doc = json.loads(recorded_boot.read_text())
            version = xen_doc.get("observed", {}).get("version", version)
            problems += differences(xen_doc, expected_boot(tree, "xen", "4.17"))
            extra["recorded-boot.json"] = json_text(xen_doc)
        trace_text = None
        if trace.is_file() and recorded_run.is_file():
            trace_text = trace.read_text(encoding="utf-8")
            xen_run = json.loads(recorded_run.read_text())
            version = xen_run.get("initial", {}).get("observed", {}).get("version", version)
            problems += run_differences(
                xen_run, expected_run(tree, trace_text, "xen", "4.17", trace_name=str(trace)))
            extra["recorded-run.json"] = json_text(xen_run)
        if problems:
            warn(f"{suite}/{dts.stem}: the reference disagrees with the recording on real "
                 f"Xen ({problems[0]}); not written")
            continue
        yield Case(suite, dts.stem, tree, text, {
            "origin": XEN_RECORDED.format(version=version), "recorded": True,
            "xen": "4.17", "dialect": "xen", "xsm": "silo",
            "description": _dts_comment(text), "source": f"{SOURCE_DIR}/{folder.name}/{dts.name}",
        }, trace=trace_text, extra=extra)


def _dts_comment(text: str) -> str:
    """The first /* ... */ comment of a DTS, on one line (the case's own description)."""
    start = text.find("/*")
    end = text.find("*/", start)
    if start < 0 or end < 0:
        return ""
    body = text[start + 2:end]
    words = [ln.strip().lstrip("*").strip() for ln in body.splitlines()]
    return " ".join(w for w in words if w)


# -- suite: rules (a breaking and a passing tree per rule ID) ------------------------------

_OPTIONS_LINE = re.compile(r"^/\* evtchn-spec: (.*) \*/$", re.M)
_FIXTURE_NAME = re.compile(r"^([A-Z0-9]+(?:-[A-Z0-9]+)+)\.(fails|passes)\.dts$")


@dataclass(frozen=True, slots=True)
class RuleFixture:
    """One tests/data/rules/<ID>.<fails|passes>.dts, with what goes with it
    (tests/data/rules/README.md has the conventions)."""

    rule: str
    breaks: bool  # .fails.dts: the tree breaks the rule
    path: Path
    text: str
    xen: str
    dialect: str
    policy: str | None  # the text of the sidecar <ID>.<fails|passes>.toml, if any


def fixture_options(text: str, name: str) -> tuple[str, str]:
    """(xen, dialect) from the `/* evtchn-spec: --xen V --dialect D */` line, if any."""
    found = list(_OPTIONS_LINE.finditer(text))
    if len(found) > 1:
        raise VectorsError("more than one `/* evtchn-spec: ... */` line", name)
    opts = {"--xen": "4.17", "--dialect": "auto"}
    words = found[0].group(1).split() if found else []
    if len(words) % 2:
        raise VectorsError(f"`evtchn-spec:` options must be pairs, got {words}", name)
    for key, value in zip(words[::2], words[1::2], strict=True):
        if key not in opts:
            raise VectorsError(f"`evtchn-spec:` knows only --xen and --dialect, not {key}",
                               name)
        opts[key] = value
    try:
        xen_profile(opts["--xen"])
    except ValueError as exc:
        raise VectorsError(str(exc), name) from None
    if opts["--dialect"] not in ("auto", "seed", "xen"):
        raise VectorsError(f"unknown dialect {opts['--dialect']!r}", name)
    return opts["--xen"], opts["--dialect"]


def rule_fixtures(folder: Path) -> list[RuleFixture]:
    """Every <ID>.fails.dts and <ID>.passes.dts of `folder`, sorted by file name."""
    out: list[RuleFixture] = []
    for path in sorted(folder.glob("*.dts")):
        m = _FIXTURE_NAME.match(path.name)
        if m is None:
            continue  # e.g. XEN-DUP-PHANDLE.unreachable.dts, which no reader accepts
        text = path.read_text(encoding="utf-8")
        xen, dialect = fixture_options(text, str(path))
        sidecar = path.with_suffix(".toml")
        policy = sidecar.read_text(encoding="utf-8") if sidecar.is_file() else None
        out.append(RuleFixture(m.group(1), m.group(2) == "fails", path, text, xen, dialect,
                               policy))
    return out


def _rule_cases(root: Path) -> Iterator[Case]:
    for fx in rule_fixtures(root / "rules"):
        name = f"{fx.rule.lower()}-{'fails' if fx.breaks else 'passes'}"
        tree = load(str(fx.path))
        yield Case("rules", name, _roundtrip(tree, f"{name}.dtb"), fx.text, {
            "origin": REFERENCE_ONLY, "recorded": False, "xen": fx.xen, "dialect": fx.dialect,
            "xsm": "silo", "rule": fx.rule, "expect_rule": fx.breaks,
            "description": _dts_comment(fx.text),
            "source": f"{SOURCE_DIR}/rules/{fx.path.name}",
        }, policy=fx.policy)
    for dts in sorted((root / "boot").glob("*.dts")):
        tree, text = _read_tree_dts(dts)
        yield Case("rules", f"example-{dts.stem}", _roundtrip(tree, f"{dts.stem}.dtb"), text, {
            "origin": REFERENCE_ONLY, "recorded": False, "xen": "4.17", "dialect": "auto",
            "xsm": "silo", "description": _dts_comment(text),
            "source": f"{SOURCE_DIR}/boot/{dts.name}"})


# -- suite: random (seeded generator of valid and mutated configs) -------------------------

PORT_CHOICES = (0, 1, 2, 3, 10, 11, 63, 64, 1023, 1024, 2000, 4095, 4096)


def random_dts(rng: random.Random) -> tuple[str, str]:
    """One generated tree as DTS, and a one-line description of what it exercises.

    Most channels are well formed; some ports come from the edge values (0, the
    xenstore port 1, bucket edges, the domU and 2-level limits) or repeat a port
    already used in that domain, and some links are mutated (asymmetric, dangling,
    one cell, missing property, the documented-but-wrong compatible).
    """
    dom0 = rng.random() < 0.4
    ndom = rng.randint(1, 4)
    enhanced = [rng.random() < (0.25 if dom0 else 0.03) for _ in range(ndom)]
    owners = [f"domU{i + 1}" for i in range(ndom)] + (["dom0"] if dom0 else [])
    used: dict[str, list[int]] = {o: [] for o in owners}
    notes: list[str] = []
    nodes: dict[str, list[str]] = {o: [] for o in owners}
    nchan = rng.randint(0, 5)
    for c in range(nchan):
        ends = [rng.choice(owners), rng.choice(owners)]
        ports = []
        for o in ends:
            roll = rng.random()
            if roll < 0.12:
                p = rng.choice(PORT_CHOICES)
            elif roll < 0.17 and used[o]:
                p = rng.choice(used[o])
                notes.append(f"port {p} reused in {o}")
            else:
                p = rng.randint(1, 120)
            used[o].append(p)
            ports.append(p)
        la, lb = f"c{c}a", f"c{c}b"
        mutation = rng.random()
        link_a, link_b = f"<{ports[0]} &{lb}>", f"<{ports[1]} &{la}>"
        compat_a = compat_b = '"xen,evtchn-v1"'
        prop_a = True
        if mutation < 0.04:
            link_b = f"<{ports[1]} &{lb}>"
            notes.append(f"channel {c}: asymmetric (B points at itself)")
        elif mutation < 0.07:
            link_a = f"<{ports[0]} 0x7777>"
            notes.append(f"channel {c}: dangling phandle")
        elif mutation < 0.10:
            link_b = f"<{ports[1]}>"
            notes.append(f"channel {c}: one cell")
        elif mutation < 0.12:
            prop_a = False
            notes.append(f"channel {c}: property missing")
        elif mutation < 0.15:
            compat_a = '"xen,evtchn"'
            notes.append(f"channel {c}: documented compatible on side A")
        body_a = (f"\t\t\t{la}: evtchn@{c}a {{\n\t\t\t\tcompatible = {compat_a};\n"
                  + (f"\t\t\t\txen,evtchn = {link_a};\n" if prop_a else "")
                  + "\t\t\t};\n")
        body_b = (f"\t\t\t{lb}: evtchn@{c}b {{\n\t\t\t\tcompatible = {compat_b};\n"
                  f"\t\t\t\txen,evtchn = {link_b};\n\t\t\t}};\n")
        nodes[ends[0]].append(body_a)
        nodes[ends[1]].append(body_b)
        notes.append(f"{ends[0]}:{ports[0]} <-> {ends[1]}:{ports[1]}")
    out = ["/dts-v1/;\n", "/ {\n", "\tchosen {\n",
           "\t\t#address-cells = <1>;\n", "\t\t#size-cells = <1>;\n"]
    addr = 0x4c000000
    if dom0:
        out.append(f"\t\tmodule@{addr:x} {{\n\t\t\tcompatible = \"multiboot,kernel\", "
                   f"\"multiboot,module\";\n\t\t\treg = <0x{addr:x} 0x200000>;\n\t\t}};\n")
        addr += 0x200000
        for body in nodes["dom0"]:
            out.append(body.replace("\t\t\t", "\t\t", 1).replace("\n\t\t\t", "\n\t\t"))
    for i in range(ndom):
        name = f"domU{i + 1}"
        out.append(f"\t\t{name} {{\n\t\t\tcompatible = \"xen,domain\";\n"
                   "\t\t\t#address-cells = <1>;\n\t\t\t#size-cells = <1>;\n"
                   "\t\t\tmemory = <0 0x10000>;\n\t\t\tcpus = <1>;\n")
        if enhanced[i]:
            out.append('\t\t\txen,enhanced = "enabled";\n')
        out.append(f"\t\t\tmodule@{addr:x} {{\n\t\t\t\tcompatible = \"multiboot,kernel\", "
                   f"\"multiboot,module\";\n\t\t\t\treg = <0x{addr:x} 0x200000>;\n\t\t\t}};\n")
        addr += 0x200000
        out.extend(nodes[name])
        out.append("\t\t};\n")
    out.append("\t};\n};\n")
    desc = (f"{'dom0 + ' if dom0 else ''}{ndom} domU(s)"
            + (f", xenstore in {sum(enhanced)}" if any(enhanced) else "")
            + (": " + "; ".join(notes) if notes else ": no channels"))
    return "".join(out), desc


TRACE_OPS = ("send", "send", "send", "clear", "close", "status", "mask", "unmask")


def random_trace(rng: random.Random, boot_doc: dict[str, Any]) -> str | None:
    """A few calls on the booted ports (and some on ports nobody has), or None."""
    if boot_doc.get("outcome") != "booted" or rng.random() < 0.4:
        return None
    doms = {int(k): [p["port"] for p in v["ports"]] for k, v in boot_doc["domains"].items()}
    if not doms:
        return None
    calls = []
    for _ in range(rng.randint(3, 10)):
        caller = rng.choice(sorted(doms))
        ports = doms[caller]
        port = rng.choice(ports) if ports and rng.random() < 0.8 else rng.randint(0, 70)
        op = rng.choice(TRACE_OPS)
        args: dict[str, int] = {"port": port}
        if op == "status":
            args["dom"] = 32752
        calls.append({"caller": caller, "op": op, "args": args})
    return json_text({"format": 1, "calls": calls})


def random_cases(count: int, seed: int, suite: str = "random") -> Iterator[Case]:
    for i in range(count):
        rng = random.Random(f"{seed}:{i}")
        text, desc = random_dts(rng)
        name = f"r{i:03d}"
        tree = _roundtrip(parse_dts(text.encode(), f"{name}.dts"), f"{name}.dtb")
        trace = random_trace(rng, expected_boot(tree, "xen", "4.17"))
        yield Case(suite, name, tree, text, {
            "origin": REFERENCE_ONLY, "recorded": False, "xen": "4.17", "dialect": "xen",
            "xsm": "silo", "description": desc, "source": f"generated (seed {seed}, case {i})",
        }, trace=trace)


# -- suite: the user's own trees ---------------------------------------------------------

def user_cases(paths: list[str], suite: str, dialect: str, xen: str) -> Iterator[Case]:
    files: list[Path] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            files.extend(sorted(q for q in path.iterdir() if q.suffix in (".dts", ".dtb")))
        elif path.is_file():
            files.append(path)
        else:
            raise VectorsError("no such file or directory", p)
    seen: set[str] = set()
    for f in files:
        name = f.stem
        while name in seen:
            name += "_"
        seen.add(name)
        tree = load(str(f))
        text = f.read_text(encoding="utf-8") if f.suffix == ".dts" else None
        trace_path = f.with_name(f"{f.stem}.trace.json")
        trace = trace_path.read_text(encoding="utf-8") if trace_path.is_file() else None
        if trace is not None:
            parse_trace(trace, str(trace_path))  # a bad trace is the user's error, now
        yield Case(suite, name, _roundtrip(tree, f"{name}.dtb"), text, {
            "origin": REFERENCE_ONLY, "recorded": False, "xen": xen, "dialect": dialect,
            "xsm": "silo", "description": f"from {f}", "source": str(f)}, trace=trace)


# -- writing -----------------------------------------------------------------------------

def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def case_files(case: Case) -> dict[str, bytes]:
    """Every file of one vector, name -> bytes (the expected outputs computed here)."""
    d, x = case.meta["dialect"], case.meta["xen"]
    files: dict[str, bytes] = {"input.dtb": write_dtb(case.tree)}
    if case.dts is not None:
        files["input.dts"] = case.dts.encode()
    files["boot.json"] = json_text(expected_boot(case.tree, d, x)).encode()
    if case.trace is not None:
        files["trace.json"] = case.trace.encode()
        files["run.json"] = json_text(expected_run(case.tree, case.trace, d, x,
                                                   case.meta["xsm"])).encode()
    if case.policy is not None:
        files["policy.toml"] = case.policy.encode()
    files["check.json"] = json_text(expected_check(case.tree, d, x, case.policy)).encode()
    for k, v in case.extra.items():
        files[k] = v.encode()
    meta = dict(case.meta, oracle=ORACLE_FORMAT, files=sorted([*files, "meta.json"]))
    files["meta.json"] = json_text(meta).encode()
    return files


def is_vectors_dir(path: Path) -> bool:
    idx = path / INDEX
    if not idx.is_file():
        return False
    try:
        doc = json.loads(idx.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and doc.get("kind") == "evtchn-spec vectors"


def prepare_dir(out: Path) -> dict[str, Any] | None:
    """Refuse a non-empty DIR that is not a previous vectors output; return its index."""
    if out.exists() and not out.is_dir():
        raise VectorsError("exists and is not a directory", out)
    if out.is_dir() and any(out.iterdir()):
        if not is_vectors_dir(out):
            raise VectorsError(f"not empty and not a vectors directory (no {INDEX} "
                               "written by `evtchn-spec vectors`); refusing to overwrite it",
                               out)
        doc: dict[str, Any] = json.loads((out / INDEX).read_text(encoding="utf-8"))
        return doc
    return None


def write_suites(out: Path, suites: dict[str, list[Case]]) -> dict[str, Any]:
    """Write the cases (replacing those suites wholesale) and the index; return the index."""
    old = prepare_dir(out)
    out.mkdir(parents=True, exist_ok=True)
    entries: dict[str, dict[str, Any]] = {}
    if old is not None:
        for e in old.get("cases", []):
            if e.get("suite") not in suites and (out / e["id"]).is_dir():
                entries[e["id"]] = e
    for suite, cases in suites.items():
        target = out / suite
        if target.exists():
            shutil.rmtree(target)
        for case in cases:
            cdir = target / case.name
            cdir.mkdir(parents=True)
            files = case_files(case)
            hashes = {}
            for name in sorted(files):
                (cdir / name).write_bytes(files[name])
                hashes[name] = _sha256(files[name])
            digest = _sha256("".join(f"{n} {h}\n" for n, h in hashes.items()).encode())
            boot_doc = json.loads(files["boot.json"])
            entries[f"{suite}/{case.name}"] = {
                "id": f"{suite}/{case.name}", "suite": suite, "recorded": case.meta["recorded"],
                "outcome": boot_doc["outcome"], "trace": case.trace is not None,
                "sha256": digest, "files": hashes}
    index = {
        "kind": "evtchn-spec vectors", "oracle": ORACLE_FORMAT,
        "generator": f"evtchn-spec {__version__}",
        "suites": {s: sum(1 for e in entries.values() if e["suite"] == s)
                   for s in sorted({e["suite"] for e in entries.values()})},
        "cases": [entries[k] for k in sorted(entries)],
    }
    (out / INDEX).write_text(json_text(index), encoding="utf-8")
    return index


def builtin_suites(names: list[str], warn: Callable[[str], None],
                   random_count: int = RANDOM_CASES, seed: int = RANDOM_SEED
                   ) -> dict[str, list[Case]]:
    for n in names:
        if n not in BUILTIN_SUITES:
            raise VectorsError(f"unknown suite {n!r} (built-in: {', '.join(BUILTIN_SUITES)})")
    out: dict[str, list[Case]] = {}
    for n in names:
        if n == "random":
            out[n] = list(random_cases(random_count, seed))
            continue
        with case_data() as root:
            if n == "rules":
                out[n] = list(_rule_cases(root))
            else:
                out[n] = list(_recorded_cases(n, root / n, warn))
    return out


def user_suite(paths: list[str], suite: str, dialect: str, xen: str) -> dict[str, list[Case]]:
    if suite in BUILTIN_SUITES:
        raise VectorsError(f"--suite {suite!r} names a built-in suite; choose another name "
                           "for --from")
    return {suite: list(user_cases(paths, suite, dialect, xen))}
