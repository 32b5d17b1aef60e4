"""`graph`: the channel topology Xen makes at boot, as Graphviz dot, Mermaid or SVG.

Edge labels say which domain holds which port (`d1:10 <-> d2:11`): an undirected
picture must not leave the reader to guess the ends. SVG is drawn here (domains on
a circle, one straight line per channel, a loop for a loopback) so that a picture
needs no Graphviz on the integrator's machine.
"""

from __future__ import annotations

import math
from html import escape

from evtchn_spec.refimpl.boot import BootChannel, BootResult


def _q(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _label(ch: BootChannel) -> str:
    return f"d{ch.dom_a}:{ch.port_a} <-> d{ch.dom_b}:{ch.port_b}"


def _title(res: BootResult) -> str:
    if res.failure is None:
        return f"{len(res.channels)} static channel(s) after boot"
    return f"Xen panics: {res.failure.panic} (channels made before it)"


def to_dot(res: BootResult) -> str:
    lines = ["graph evtchn {", f"  label={_q(_title(res))};", "  node [shape=box];"]
    for d in res.domains:
        lines.append(f"  d{d.domid} [label={_q(f'{d.name} (d{d.domid})')}];")
    for ch in res.channels:
        lines.append(f"  d{ch.dom_a} -- d{ch.dom_b} [label={_q(_label(ch))}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_mermaid(res: BootResult) -> str:
    lines = ["graph LR"]
    for d in res.domains:
        lines.append(f"  d{d.domid}[{_q(f'{d.name} (d{d.domid})')}]")
    for ch in res.channels:
        lines.append(f"  d{ch.dom_a} ---|{_q(_label(ch))}| d{ch.dom_b}")
    return "\n".join(lines) + "\n"


def to_svg(res: BootResult) -> str:
    n = max(len(res.domains), 1)
    radius = 60.0 + 30.0 * n if n > 1 else 0.0
    size = 2 * radius + 260
    cx = cy = size / 2
    pos: dict[int, tuple[float, float]] = {}
    for i, d in enumerate(res.domains):
        angle = 2 * math.pi * i / n - math.pi / 2
        pos[d.domid] = (cx + radius * math.cos(angle), cy + radius * math.sin(angle))
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{size:.0f}" height="{size:.0f}" '
           f'viewBox="0 0 {size:.0f} {size:.0f}" font-family="sans-serif" font-size="12">',
           f'<text x="10" y="20" font-size="14">{escape(_title(res))}</text>']
    loops: dict[int, int] = {}
    for ch in res.channels:
        (xa, ya), (xb, yb) = pos[ch.dom_a], pos[ch.dom_b]
        if ch.dom_a == ch.dom_b:  # loopback: a loop above the box, stacked
            k = loops.get(ch.dom_a, 0)
            loops[ch.dom_a] = k + 1
            top = ya - 18 - 14 * k
            out.append(f'<path d="M {xa - 20:.1f} {ya - 16:.1f} C {xa - 30:.1f} {top - 40:.1f} '
                       f'{xa + 30:.1f} {top - 40:.1f} {xa + 20:.1f} {ya - 16:.1f}" fill="none" '
                       f'stroke="#555"/>')
            out.append(f'<text x="{xa:.1f}" y="{top - 32:.1f}" text-anchor="middle">'
                       f"{ch.port_a} &lt;-&gt; {ch.port_b}</text>")
            continue
        out.append(f'<line x1="{xa:.1f}" y1="{ya:.1f}" x2="{xb:.1f}" y2="{yb:.1f}" '
                   f'stroke="#555"/>')
        for (x0, y0), (x1, y1), port in (((xa, ya), (xb, yb), ch.port_a),
                                         ((xb, yb), (xa, ya), ch.port_b)):
            lx, ly = x0 + (x1 - x0) * 0.28, y0 + (y1 - y0) * 0.28
            out.append(f'<text x="{lx:.1f}" y="{ly - 4:.1f}" text-anchor="middle" '
                       f'fill="#036">{port}</text>')
    for d in res.domains:
        x, y = pos[d.domid]
        label = escape(f"{d.name} (d{d.domid})")
        width = 12 + 7 * len(f"{d.name} (d{d.domid})")
        out.append(f'<rect x="{x - width / 2:.1f}" y="{y - 14:.1f}" width="{width:.0f}" '
                   f'height="28" rx="4" fill="#eef" stroke="#336"/>')
        out.append(f'<text x="{x:.1f}" y="{y + 4:.1f}" text-anchor="middle">{label}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
