"""`table --guest-header DIR --lang c|rust|json|zephyr`: per-guest port manifests.

A dom0less guest is built before Xen binds anything, so it can only learn its static
ports at build time. This module turns the binding table (table.rows, the one source
of truth: nothing here binds a port) into one file per domain with one named
constant per port of that domain.

Names (the same in every language):

* a static port is named from the first label of its endpoint node, else from the
  node name: every character that is not an ASCII letter or digit becomes `_`, runs
  of `_` are merged, leading and trailing ones dropped, the result upper-cased and
  prefixed with `EVTCHN_` (unless it already starts so): `sensor_to_ctrl:` ->
  `EVTCHN_SENSOR_TO_CTRL`, `evtchn@a` -> `EVTCHN_A`; nothing left -> `EVTCHN_PORT_<port>`;
* the xenstore port Xen allocates for an enhanced domain is `EVTCHN_XENSTORE`, and no
  static port ever takes that name;
* when two ports of one domain map to the same name (or a static one to
  `EVTCHN_XENSTORE`), each of them, in port order, gets `_P<port>` appended, again
  and again until the name is one no other port of the file has.

Every name is then `[A-Z][A-Z0-9_]*` and starts with `EVTCHN`: a valid C and Rust
identifier, never a keyword of either (they are lower case), upper case as Rust wants
constants, and never the header guard (which starts with `XEN_STATIC_EVTCHN_`).
The output depends only on the tree, the Xen version and the dialect: the same tree
gives the same bytes.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from evtchn_spec.refimpl.boot import BootResult
from evtchn_spec.refimpl.config import DomainSpec

from .table import Row, row_json

LANGS = ("c", "rust", "json", "zephyr")
EXTENSIONS = {"c": ".h", "rust": ".rs", "json": ".json", "zephyr": ".overlay"}
PREFIX = "EVTCHN_"
XENSTORE = "EVTCHN_XENSTORE"
_UNDERSCORES = re.compile(r"_+")


@dataclass(frozen=True, slots=True)
class Port:
    """One constant of a manifest: the identifier and the table row it names."""

    name: str
    row: Row
    source: str  # what the name was made from: "label", "node" or "xenstore"


def identifier_part(text: str) -> str:
    """`text` as upper-case identifier characters (ASCII letters, digits, single `_`)."""
    mapped = "".join(c.upper() if c.isascii() and c.isalnum() else "_" for c in text)
    return _UNDERSCORES.sub("_", mapped).strip("_")


def _base(row: Row, res: BootResult) -> tuple[str, str]:
    if row.kind == "xenstore":
        return XENSTORE, "xenstore"
    node = res.config.tree.find(row.node)
    labels = list(node.labels) if node is not None else []
    if labels:
        text, source = labels[0], "label"
    else:
        text, source = (node.name if node is not None else row.node.rsplit("/", 1)[-1]), "node"
    part = identifier_part(text)
    if not part:
        return f"{PREFIX}PORT_{row.port}", source
    if part == PREFIX.rstrip("_") or part.startswith(PREFIX):
        return part, source
    return PREFIX + part, source


def port_names(rows: list[Row], res: BootResult) -> list[Port]:
    """The constants of one domain's rows (in port order), unique as the module
    docstring says."""
    ordered = sorted(rows, key=lambda r: (r.port, r.kind, r.node))
    bases = [_base(r, res) for r in ordered]
    counts = Counter(b for (b, src) in bases if src != "xenstore")
    keep = {b for b, n in counts.items() if n == 1 and b != XENSTORE}
    taken = set(keep)
    if any(src == "xenstore" for (_, src) in bases):
        taken.add(XENSTORE)
    out: list[Port] = []
    for row, (base, source) in zip(ordered, bases, strict=True):
        if source == "xenstore" or base in keep:
            name = base
        else:
            name = f"{base}_P{row.port}"
            while name in taken:
                name += f"_P{row.port}"
            taken.add(name)
        out.append(Port(name, row, source))
    return out


def file_stems(res: BootResult) -> dict[int, str]:
    """domid -> file name stem: the domain's name (its node name; `dom0` for dom0)
    with characters other than ASCII letters, digits, `-`, `_` and `.` made `_`; a
    name that is empty or starts with `.` is prefixed `d<domid>-`; names that are
    equal ignoring case (two files on a case-insensitive file system) all get
    `-d<domid>` appended."""
    raw: dict[int, str] = {}
    for spec in res.domains:
        s = "".join(c if (c.isascii() and c.isalnum()) or c in "-_." else "_"
                    for c in spec.name)
        if not s or s.startswith("."):
            s = f"d{spec.domid}-{s}"
        raw[spec.domid] = s
    folded = Counter(s.casefold() for s in raw.values())
    return {d: (f"{s}-d{d}" if folded[s.casefold()] > 1 else s) for d, s in raw.items()}


def comment_text(text: str) -> str:
    """`text` safe inside any comment of the four languages: printable ASCII only
    (others as \\xNN), and no `*/` to end a C or DTS comment early."""
    safe = "".join(c if " " <= c <= "~" else f"\\x{ord(c):02x}" for c in text)
    return safe.replace("*/", "*\\/")


def _describe(p: Port) -> str:
    r = p.row
    peer = f"{r.peer_domain} (domid {r.peer_domid})"
    if r.kind == "xenstore":
        return (f"xenstore: port {r.port}, allocated by Xen, unbound until {peer} "
                "binds it (also in HVM_PARAM_STORE_EVTCHN)")
    text = f"port {r.port} <-> {peer} port {r.peer_port}; node {r.node}"
    if r.peer_node and r.peer_node != r.node:
        text += f" (peer {r.peer_node})"
    return text


def _title(spec: DomainSpec, res: BootResult) -> list[str]:
    lines = [f"Event channel ports of {spec.name} (domid {spec.domid}), as Xen "
             f"{res.config.profile.name} binds them at boot.",
             "Generated by evtchn-spec table --guest-header; do not edit."]
    if res.failure is not None:
        lines.append(f"WARNING: Xen panics with this tree ({res.failure.panic}): these are "
                     "the ports its walk made before that; see evtchn-spec check.")
    return [comment_text(x) for x in lines]


def to_c(spec: DomainSpec, ports: list[Port], res: BootResult) -> str:
    guard = "XEN_STATIC_EVTCHN_D" + str(spec.domid)
    part = identifier_part(spec.name)
    guard += (f"_{part}" if part else "") + "_H"
    lines = ["/*", *(f" * {x}" for x in _title(spec, res)),
             " * Each value is an evtchn_port_t of this domain.", " */",
             f"#ifndef {guard}", f"#define {guard}", ""]
    for p in ports:
        lines += [f"/* {comment_text(_describe(p))} */", f"#define {p.name} {p.row.port}", ""]
    lines.append(f"#endif /* {guard} */")
    return "\n".join(lines) + "\n"


def to_rust(spec: DomainSpec, ports: list[Port], res: BootResult) -> str:
    lines = [f"//! {x}" for x in _title(spec, res)]
    lines += ["//!", "//! Each constant is an `evtchn_port_t` (u32) of this domain.", ""]
    for p in ports:
        lines += [f"/// {comment_text(_describe(p))}",
                  f"pub const {p.name}: u32 = {p.row.port};", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def to_json(spec: DomainSpec, ports: list[Port], res: BootResult) -> str:
    doc = {"format": 1, "domain": spec.name, "domid": spec.domid,
           "xen": res.config.profile.name, "outcome": res.outcome,
           "ports": [{"name": p.name, "source": p.source, **row_json(p.row)} for p in ports]}
    return json.dumps(doc, indent=2) + "\n"


def zephyr_property(name: str) -> str:
    """The /zephyr,user property for a constant: lower case, `-` for `_` (Zephyr's
    DT_PROP token is then the constant in lower case)."""
    return name.lower().replace("_", "-")


def to_zephyr(spec: DomainSpec, ports: list[Port], res: BootResult) -> str:
    example = zephyr_property(ports[0].name).replace("-", "_") if ports else "evtchn_name"
    lines = ["/*", *(f" * {x}" for x in _title(spec, res)),
             " * A devicetree overlay for a Zephyr guest: build with",
             " *   west build -b xenvm/xenvm APP -- -DEXTRA_DTC_OVERLAY_FILE=<this file>",
             " * and read a port with",
             f" *   DT_PROP(DT_PATH(zephyr_user), {example})",
             " * (/zephyr,user needs no binding; it merges with the application's own).",
             " */", "", "/ {", "\tzephyr,user {"]
    for p in ports:
        lines += [f"\t\t/* {comment_text(_describe(p))} */",
                  f"\t\t{zephyr_property(p.name)} = <{p.row.port}>;"]
    lines += ["\t};", "};"]
    return "\n".join(lines) + "\n"


RENDER: dict[str, Callable[[DomainSpec, list[Port], BootResult], str]] = {
    "c": to_c, "rust": to_rust, "json": to_json, "zephyr": to_zephyr}


def manifests(res: BootResult, table: list[Row], lang: str) -> dict[str, str]:
    """File name -> text, one file per domain Xen creates (a domain without ports
    gets a file without constants, so that a build never misses its include)."""
    per: dict[int, list[Row]] = {}
    for r in table:
        per.setdefault(r.domid, []).append(r)
    stems = file_stems(res)
    render = RENDER[lang]
    return {stems[spec.domid] + EXTENSIONS[lang]:
            render(spec, port_names(per.get(spec.domid, []), res), res)
            for spec in res.domains}
