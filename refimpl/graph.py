"""`graph`: the channel topology Xen makes at boot, as Graphviz dot or Mermaid."""

from __future__ import annotations

from .boot import BootResult


def _q(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(res: BootResult) -> str:
    lines = ["graph evtchn {", "  node [shape=box];"]
    for d in res.domains:
        lines.append(f"  d{d.domid} [label={_q(f'{d.name} (d{d.domid})')}];")
    for ch in res.channels:
        lines.append(f"  d{ch.dom_a} -- d{ch.dom_b} "
                     f"[label={_q(f'{ch.port_a} <-> {ch.port_b}')}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_mermaid(res: BootResult) -> str:
    lines = ["graph LR"]
    for d in res.domains:
        lines.append(f"  d{d.domid}[{_q(f'{d.name} (d{d.domid})')}]")
    for ch in res.channels:
        lines.append(f"  d{ch.dom_a} ---|{_q(f'{ch.port_a} <-> {ch.port_b}')}| d{ch.dom_b}")
    return "\n".join(lines) + "\n"
