"""Turn Xen's console log into the `boot` JSON of ARCHITECTURE.md.

Console conventions this relies on (observed on Debian's Xen 4.17.7 arm64):
* Xen's own lines start with "(XEN) "; a domU's console_io lines arrive whole,
  prefixed "(dN) " with N its domid; the hardware domain's arrive unprefixed.
* The guest prints only lines starting "@evt " (see conformance/guest/guest.c).
* A panic is printed as a banner: a line of stars, "Panic on CPU N:", the
  panic text, a line of stars.

Choices (documented in conformance/README.md):
* `error` is the last line Xen printed before the panic banner, with the
  "(XEN) " prefix removed and nothing else changed: Xen's static-evtchn
  messages end "(Error -16) " with a trailing space, and so does `error`.
  It is null when that line is one of Xen's unconditional domain-building
  progress lines ("*** LOADING DOMU ...", "Loading d1 DTB to ...", ...): the
  panic then came without an error line.
* `node` is omitted: Xen does not print which DT node failed.
* `static` is true for a port that is interdomain when the guest first runs:
  in a dom0less boot nothing but the static-evtchn code binds interdomain
  channels before the guests run (the xenstore channel is left unbound).
* `pending`/`masked` are the 2-level bits in shared_info when the guest first
  reads them (it runs with interrupts masked and never clears them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .dtbuild import BootPlan

STATUS_NAMES = {0: "closed", 1: "unbound", 2: "interdomain", 3: "pirq", 4: "virq", 5: "ipi"}

_LINE_RE = re.compile(r"^(?:\(d(\d+)\) )?@evt (\w+)(.*)$")
_KV_RE = re.compile(r"(\w+)=(\S+)")
_STARS_RE = re.compile(r"^\(XEN\) \*{20,}\s*$")
_PANIC_RE = re.compile(r"^\(XEN\) Panic on CPU \d+:\s*$")
_TRAILING_STARS_RE = re.compile(r"\*{20,}\s*$")
# Lines Xen prints unconditionally while building domains: a panic right after
# one of them came without an error line of its own.
_PROGRESS_RE = re.compile(
    r"^(\*\*\* LOADING |Loading |Allocating |d\d+ BANK\[|BANK\[|d\d+: extended region|"
    r"Xen dom0less mode detected|Initial low memory virq threshold|Std\. Loglevel|"
    r"Guest Loglevel|\*\*\* Serial input|Freed \d+kB init memory)")


@dataclass(slots=True)
class GuestPort:
    port: int
    status: int
    remote_dom: int | None
    remote_port: int | None
    vcpu: int
    pending: bool
    masked: bool


@dataclass(slots=True)
class GuestReport:
    """Everything one domain's guest printed."""

    domid: int
    tag: str = ""
    shinfo_rc: int | None = None
    phases: dict[int, list[GuestPort]] = field(default_factory=dict)
    valid: dict[int, int] = field(default_factory=dict)       # phase -> first invalid port
    upcall: dict[int, int] = field(default_factory=dict)      # phase -> evtchn_upcall_pending
    selector: dict[int, int] = field(default_factory=dict)    # phase -> evtchn_pending_sel
    calls: list[dict[str, Any]] = field(default_factory=list)
    ended: set[int] = field(default_factory=set)
    began_ms: dict[int, int] = field(default_factory=dict)    # phase -> dump start time
    ended_ms: dict[int, int] = field(default_factory=dict)    # phase -> dump end time
    done: bool = False
    dt_evtchn: list[str] = field(default_factory=list)        # its DT's xen,evtchn* nodes
    dt_hypervisor: int | None = None                          # its DT has a xen,xen node
    store_pfn: str | None = None                              # HVM_PARAM_STORE_PFN
    store_evtchn: int | None = None                           # HVM_PARAM_STORE_EVTCHN


def _int(text: str) -> int:
    return int(text, 0)


def parse_guests(console: list[str]) -> dict[int, GuestReport]:
    """Every guest's report, keyed by domid (the console prefix; none = dom0)."""
    out: dict[int, GuestReport] = {}
    for line in console:
        m = _LINE_RE.match(line)
        if not m:
            continue
        domid = int(m.group(1)) if m.group(1) is not None else 0
        what, rest = m.group(2), m.group(3)
        kv = dict(_KV_RE.findall(rest))
        g = out.setdefault(domid, GuestReport(domid))
        try:
            if what == "hello":
                g.tag = kv.get("tag", "")
            elif what == "shinfo":
                g.shinfo_rc = _int(kv["rc"])
            elif what == "port":
                phase = _int(kv["phase"])
                st = _int(kv["st"])
                g.phases.setdefault(phase, []).append(GuestPort(
                    port=_int(kv["port"]), status=st,
                    remote_dom=_int(kv["rdom"]) if "rdom" in kv else None,
                    remote_port=_int(kv["rport"]) if "rport" in kv else None,
                    vcpu=_int(kv.get("vcpu", "0")),
                    pending=kv.get("pend") == "1", masked=kv.get("mask") == "1"))
            elif what == "valid":
                g.valid[_int(kv["phase"])] = _int(kv["n"])
                g.phases.setdefault(_int(kv["phase"]), [])
            elif what == "vcpu":
                g.upcall[_int(kv["phase"])] = _int(kv["upcall"])
                g.selector[_int(kv["phase"])] = _int(kv["sel"])
            elif what == "call":
                made = {"slot": _int(kv["slot"]), "op": kv.get("op", "?"),
                        "port": _int(kv["port"]), "rc": _int(kv["rc"])}
                if "out" in kv:
                    made["out"] = _int(kv["out"])
                for key in ("st", "svcpu", "sdom", "sport", "svirq"):  # EVTCHNOP_status
                    if key in kv:
                        made[key] = _int(kv[key])
                if "t_ms" in kv:
                    made["t_ms"] = _int(kv["t_ms"])
                g.calls.append(made)
            elif what == "begin":
                g.began_ms[_int(kv["phase"])] = _int(kv["t_ms"])
            elif what == "end":
                g.ended.add(_int(kv["phase"]))
                if "t_ms" in kv:
                    g.ended_ms[_int(kv["phase"])] = _int(kv["t_ms"])
            elif what == "done":
                g.done = True
            elif what == "dtnode":
                g.dt_evtchn.append(kv["path"])
            elif what == "dt":
                g.dt_hypervisor = _int(kv["hypervisor"]) if "hypervisor" in kv else None
            elif what == "params":
                if _int(kv["pfn_rc"]) == 0:
                    g.store_pfn = kv["store_pfn"]
                if _int(kv["evtchn_rc"]) == 0:
                    g.store_evtchn = _int(kv["store_evtchn"])
        except (KeyError, ValueError):
            continue  # a garbled line (e.g. cut by a panic) carries nothing usable
    return out


def panic_of(console: list[str]) -> tuple[str, str | None] | None:
    """(panic text, the line before the banner) when Xen panicked, else None."""
    for i, line in enumerate(console):
        if not _PANIC_RE.match(line):
            continue
        text: list[str] = []
        for after in console[i + 1:]:
            if _STARS_RE.match(after):
                break
            body = after[len("(XEN) "):] if after.startswith("(XEN) ") else after
            glued = _TRAILING_STARS_RE.search(body)
            if glued:  # a panic format without "\n" ("Only 1 xenstore domain ... (%u)")
                text.append(body[:glued.start()])
                break
            text.append(body)
        error: str | None = None
        j = i - 1
        if j >= 0 and _STARS_RE.match(console[j]):
            j -= 1
        while j >= 0 and (not console[j].startswith("(XEN) ") or not console[j][6:].strip()):
            j -= 1  # guest lines and Xen's blank line before the banner are not the error
        if j >= 0 and not _PROGRESS_RE.match(console[j][len("(XEN) "):]):
            error = console[j][len("(XEN) "):]
        return "\n".join(t.rstrip() for t in text).strip(), error
    return None


def ports_json(ports: list[GuestPort], *, initial: list[GuestPort] | None = None
               ) -> list[dict[str, Any]]:
    """Ports in increasing order, every one not closed (plus closed ones with an event bit).

    `static`: the port was interdomain in INITIAL (the first dump) and is still in use.
    """
    base = initial if initial is not None else ports
    static = {p.port for p in base if p.status == 2}
    out: list[dict[str, Any]] = []
    for p in sorted(ports, key=lambda x: x.port):
        if p.status == 0 and not p.pending and not p.masked:
            continue
        entry: dict[str, Any] = {"port": p.port,
                                 "status": STATUS_NAMES.get(p.status, str(p.status))}
        if p.status in (1, 2) and p.remote_dom is not None:
            entry["remote_dom"] = p.remote_dom
        if p.status == 2 and p.remote_port is not None:
            entry["remote_port"] = p.remote_port
        entry["static"] = p.port in static and p.status != 0
        entry["pending"] = p.pending
        entry["masked"] = p.masked
        out.append(entry)
    return out


_BANNER_RE = re.compile(r"^\(XEN\) Xen version (\S+) ")


def banner_version(console: list[str]) -> str | None:
    """The version Xen's banner names ("Xen version 4.22.0 (...)" -> "4.22.0")."""
    for line in console:
        m = _BANNER_RE.match(line)
        if m:
            return m.group(1)
    return None


def banner_line(console: list[str]) -> str | None:
    for line in console:
        if _BANNER_RE.match(line):
            return line[len("(XEN) "):]
    return None


def xsm_policy(console: list[str]) -> str:
    """The XSM policy in force, as the console shows it (xsm/xsm_core.c, silo.c, flask):
    "silo" ("Initialising XSM SILO mode"), "flask" (a "Flask:" line), "dummy" (the XSM
    framework initialised with neither), "none" (no XSM framework line: XSM not built,
    dummy hooks compiled in), "unknown" when the boot stopped before XSM said anything."""
    framework = False
    for line in console:
        text = line[len("(XEN) "):] if line.startswith("(XEN) ") else line
        if text.startswith("Initialising XSM SILO mode"):
            return "silo"
        if text.startswith(("Flask:", "Flask ")):
            return "flask"
        if text.startswith("XSM Framework"):
            framework = True
        elif framework and text.startswith("Using scheduler"):
            return "dummy"
        elif not framework and text.startswith("Using scheduler"):
            return "none"
    return "dummy" if framework else "unknown"


def build_json(console: list[str], *, release: str, source: str, package: str,
               image: str) -> dict[str, Any]:
    """Which hypervisor ran: the release asked for, where it came from, and what the
    console said (banner version and line, XSM policy)."""
    return {"release": release, "source": source, "package_version": package,
            "image": image, "banner_version": banner_version(console),
            "banner": banner_line(console), "xsm": xsm_policy(console)}


def boot_json(console: list[str], plan: BootPlan, reason: str, *,
              xen_version: str = "", build: dict[str, Any] | None = None) -> dict[str, Any]:
    """The boot JSON for one run (see the module docstring for the choices)."""
    result: dict[str, Any] = {"format": 1}
    panic = panic_of(console)
    guests = parse_guests(console)
    names = {d.domid: d.name for d in plan.domains}
    tags = {d.domid: d.tag for d in plan.domains}
    if panic is not None:
        text, error = panic
        result["outcome"] = "panic"
        result["error"] = error
        result["panic"] = text
    else:
        # "done": every expected guest said so, or (with none expected) Xen
        # finished booting; a silent or hung Xen is never "booted".
        complete = reason == "done" and set(guests) >= set(names) and \
            all(g.done or 0 in g.ended for g in guests.values())
        result["outcome"] = "booted" if complete else "incomplete"
        domains: dict[str, Any] = {}
        for domid in sorted(set(guests) | set(names)):
            g = guests.get(domid)
            entry: dict[str, Any] = {"name": names.get(domid, f"d{domid}")}
            entry["ports"] = ports_json(g.phases.get(0, [])) if g else []
            domains[str(domid)] = entry
        result["domains"] = domains
        if not complete:
            if not any(line.strip() for line in console):
                result["detail"] = f"Xen printed nothing before the run ended ({reason})"
            else:
                result["detail"] = f"run ended ({reason}) before every domain reported"
    observed: dict[str, Any] = {"version": xen_version, "dom0": plan.dom0}
    if build is not None:
        observed["build"] = build
    if plan.notes:
        observed["notes"] = list(plan.notes)
    if guests:
        observed["guests"] = {
            str(d): {"tag": g.tag, "tag_expected": tags.get(d),
                     "valid_ports": g.valid.get(0), "upcall_pending": g.upcall.get(0),
                     "pending_sel": g.selector.get(0), "shared_info_rc": g.shinfo_rc,
                     "dt_evtchn_nodes": g.dt_evtchn, "dt_hypervisor_node": g.dt_hypervisor,
                     "store_pfn": g.store_pfn, "store_evtchn": g.store_evtchn}
            for d, g in sorted(guests.items())}
    result["observed"] = observed
    return result
