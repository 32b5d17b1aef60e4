"""Hypothesis: `fix` on configs whose only problems are ports (collisions, xenstore
port, range, port 0 on either side) returns DTS that the reference boot accepts,
that differs from the input only in port cells, and that changes no more cells
than a simple valid repair needs (one per offending endpoint)."""

from __future__ import annotations

import functools
import math
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evtchn_spec.grammar import load
from evtchn_spec.proofs.repair import repair
from evtchn_spec.refimpl.boot import boot
from evtchn_spec.refimpl.config import Config, xen_profile

PORTS = st.one_of(st.integers(min_value=0, max_value=6), st.sampled_from([1023, 1024, 5000]))


@st.composite
def dts(draw: st.DrawFn) -> str:
    ndom = draw(st.integers(min_value=1, max_value=3))
    xs = [draw(st.booleans()) for _ in range(ndom)]
    chans = draw(st.lists(st.tuples(st.integers(0, ndom - 1), PORTS,
                                    st.integers(0, ndom - 1), PORTS), max_size=6))
    body: dict[int, list[str]] = {d: [] for d in range(ndom)}
    for k, (da, pa, db, pb) in enumerate(chans):
        body[da].append(f"\t\t\ta{k}: evtchn@a{k} {{ compatible = \"xen,evtchn-v1\"; "
                        f"xen,evtchn = <{pa} &b{k}>; }}; /* keep me */")
        body[db].append(f"\t\t\tb{k}: evtchn@b{k} {{ compatible = \"xen,evtchn-v1\"; "
                        f"xen,evtchn = <{pb:#x} &a{k}>; }};")
    out = ["/dts-v1/;", "/ {", "\tchosen {", "\t\t#address-cells = <2>;",
           "\t\t#size-cells = <1>;",
           '\t\tmodule@0 { compatible = "multiboot,kernel", "multiboot,module"; '
           "reg = <0 0x40000000 0x100000>; };"]
    for d in range(ndom):
        enh = '"enabled"' if xs[d] else '"no-xenstore"'
        out += [f"\t\tdomU{d} {{", '\t\t\tcompatible = "xen,domain";',
                "\t\t\t#address-cells = <2>;", "\t\t\t#size-cells = <1>;",
                "\t\t\tcpus = <1>;", "\t\t\tmemory = <0 0x40000>;",
                f"\t\t\txen,enhanced = {enh};",
                '\t\t\tmodule@1 { compatible = "multiboot,kernel", "multiboot,module"; '
                f"reg = <0 {0x50000000 + d * 0x1000000:#x} 0x100000>; }};",
                *body[d], "\t\t};"]
    out += ["\t};", "};", ""]
    return "\n".join(out)


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(dts())
def test_fix_output_boots_and_touches_only_ports(tmp_path: Path, text: str) -> None:
    src = tmp_path / "in.dts"
    src.write_text(text)
    cfg = Config.from_tree(load(str(src)), xen_profile("4.17"))
    res = repair(cfg, timeout=60)  # a hang becomes a failing "unknown", not a stuck run
    assert res.status in ("ok", "fixed"), res.summary
    if res.status == "ok":
        assert boot(cfg).outcome == "booted"
        return
    assert res.text is not None
    fixed = tmp_path / "fixed.dts"
    fixed.write_text(res.text)
    again = Config.from_tree(load(str(fixed)), xen_profile("4.17"))
    assert boot(again).outcome == "booted", (res.summary, res.text)
    old, new = text.split("\n"), res.text.split("\n")
    assert len(old) == len(new)
    touched = {c.span.line for c in res.changes}
    for i, (a, b) in enumerate(zip(old, new, strict=True), 1):
        assert a == b or i in touched
    assert all(c.new != c.old and c.new != 0 for c in res.changes)
    # fewest changes: never more than the number of endpoints whose port is bad on
    # its own or shared (a valid repair renumbers at most those)
    assert len(res.changes) <= len(cfg.endpoints)


# --- fewest changes against an exhaustive search -------------------------------------

SMALL = st.sampled_from([0, 0, 1, 2, 3, 4, 5, 1024, 5000])
DOMU_LIMIT = 1023


def _valid(cells: list[tuple[str, int]], xs: bool) -> bool:
    """The ports of one domain, in the order Xen allocates them (side A, then side B of
    each channel, channels in walk order): each explicit port in range and free, a side-B
    port 0 binding the lowest free port, a side-A port 0 failing (EVT-PORT-ZERO)."""
    held = {1} if xs else set()
    for side, p in cells:
        if p == 0:
            if side == "A":
                return False
            p = min(set(range(1, len(held) + 2)) - held)
        if p > DOMU_LIMIT or p in held:
            return False
        held.add(p)
    return True


def _brute_min(cells: list[tuple[str, int]], xs: bool) -> int:
    """The fewest changed cells that make the domain valid, by exhaustive search over
    every assignment of new values (dynamic programming over the set of held ports).

    A port-0 cell binds at most port len(cells) + 1, so a new value above every written
    port and that bound only has to differ from the others: one fresh high value stands
    for all of them (and need not be remembered as held)."""
    high = max([len(cells) + 1] + [p for _, p in cells if p <= DOMU_LIMIT])

    @functools.cache
    def least(i: int, held: frozenset[int]) -> float:
        if i == len(cells):
            return 0
        side, old = cells[i]
        best = math.inf
        if old != 0:
            if old <= DOMU_LIMIT and old not in held:
                best = least(i + 1, held | {old})
        elif side == "B":  # Xen binds the lowest free port
            best = least(i + 1, held | {min(set(range(1, len(held) + 2)) - held)})
        for v in range(1, high + 1):
            if v != old and v not in held:
                best = min(best, 1 + least(i + 1, held | {v}))
        return min(best, 1 + least(i + 1, held))  # a fresh high value

    got = least(0, frozenset({1} if xs else ()))
    assert got != math.inf  # a domain this small always has room
    return int(got)


@st.composite
def small_config(draw: st.DrawFn) -> tuple[int, list[bool], list[tuple[int, int, int, int]]]:
    ndom = draw(st.integers(min_value=1, max_value=2))
    xs = [draw(st.booleans()) for _ in range(ndom)]
    chans = draw(st.lists(st.tuples(st.integers(0, ndom - 1), SMALL,
                                    st.integers(0, ndom - 1), SMALL), min_size=1, max_size=4))
    return ndom, xs, chans


def _render(ndom: int, xs: list[bool], chans: list[tuple[int, int, int, int]]) -> str:
    body: dict[int, list[str]] = {d: [] for d in range(ndom)}
    for k, (da, pa, db, pb) in enumerate(chans):
        body[da].append(f'a{k}: evtchn@a{k} {{ compatible = "xen,evtchn-v1"; '
                        f"xen,evtchn = <{pa} &b{k}>; }};")
        body[db].append(f'b{k}: evtchn@b{k} {{ compatible = "xen,evtchn-v1"; '
                        f"xen,evtchn = <{pb} &a{k}>; }};")
    out = ["/dts-v1/;", "/ { chosen { #address-cells = <2>; #size-cells = <1>;",
           'module@0 { compatible = "multiboot,kernel", "multiboot,module"; '
           "reg = <0 0x40000000 0x100000>; };"]
    for d in range(ndom):
        enh = '"enabled"' if xs[d] else '"no-xenstore"'
        out += [f'domU{d} {{ compatible = "xen,domain"; #address-cells = <2>; '
                f"#size-cells = <1>; cpus = <1>; memory = <0 0x40000>; xen,enhanced = {enh};",
                'module@1 { compatible = "multiboot,kernel", "multiboot,module"; '
                f"reg = <0 {0x50000000 + d * 0x1000000:#x} 0x100000>; }};", *body[d], "};"]
    return "\n".join([*out, "}; };", ""])


def _domain_cells(ndom: int, chans: list[tuple[int, int, int, int]],
                  ports: dict[str, int]) -> dict[int, list[tuple[str, int]]]:
    """Each domain's cells in allocation order: the walk visits domains, then their
    nodes, in source order; the first node of a channel it meets is side A."""
    order = [(d, n) for d in range(ndom) for k, (da, _, db, _) in enumerate(chans)
             for n in ((f"a{k}",) if da == d else ()) + ((f"b{k}",) if db == d else ())]
    # source order within a domain is channel order, a before b
    order.sort(key=lambda x: (x[0], int(x[1][1:]), x[1][0]))
    dom = {f"a{k}": c[0] for k, c in enumerate(chans)} | {f"b{k}": c[2]
                                                         for k, c in enumerate(chans)}
    cells: dict[int, list[tuple[str, int]]] = {d: [] for d in range(ndom)}
    seen: set[int] = set()
    for _, n in order:
        k = int(n[1:])
        if k in seen:
            continue
        seen.add(k)
        other = ("b" if n[0] == "a" else "a") + str(k)
        cells[dom[n]].append(("A", ports[n]))
        cells[dom[other]].append(("B", ports[other]))
    return cells


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(small_config())
def test_fix_changes_as_few_cells_as_exhaustive_search(
        tmp_path: Path, conf: tuple[int, list[bool], list[tuple[int, int, int, int]]]) -> None:
    ndom, xs, chans = conf
    src = tmp_path / "in.dts"
    src.write_text(_render(ndom, xs, chans))
    cfg = Config.from_tree(load(str(src)), xen_profile("4.17"))
    res = repair(cfg, timeout=60)
    assert res.status in ("ok", "fixed"), res.summary
    ports = {f"a{k}": c[1] for k, c in enumerate(chans)} | {f"b{k}": c[3]
                                                            for k, c in enumerate(chans)}
    new = dict(ports)
    for c in res.changes:
        new[c.node.rsplit("@", 1)[1]] = c.new
    before, after = _domain_cells(ndom, chans, ports), _domain_cells(ndom, chans, new)
    for d in range(ndom):
        assert _valid(after[d], xs[d]), (d, after[d])  # fix's answer is a repair
        made = sum(a != b for a, b in zip(before[d], after[d], strict=True))
        # and no repair of this domain changes fewer cells
        assert made == _brute_min(before[d], xs[d]), (d, before[d], after[d])


TWELVE = [(1023, 0), (6, 5000), (1023, 0), (1023, 1023), (1023, 1023), (0, 0)]


def test_fix_twelve_endpoints_one_domain_is_quick_and_keeps_the_earliest(
        tmp_path: Path) -> None:
    """Six channels inside one xenstore domain (once 16 s of CPU in Optimize). Six cells
    write 1023 (one may keep it), one writes 5000 and one side A asks for port 0: 7
    changes at least. The earliest 1023 stays; each changed cell, in walk order, takes
    the lowest port left (the port-0 side Bs take the lowest free port as Xen binds it)."""
    src = tmp_path / "twelve.dts"
    src.write_text(_render(1, [True], [(0, a, 0, b) for a, b in TWELVE]))
    cfg = Config.from_tree(load(str(src)), xen_profile("4.17"))
    t0 = time.process_time()
    res = repair(cfg, timeout=60)
    cpu = time.process_time() - t0
    assert res.status == "fixed", res.summary
    got = {c.node.rsplit("@", 1)[1]: (c.old, c.new) for c in res.changes}
    assert got == {"b1": (5000, 3), "a2": (1023, 4), "a3": (1023, 7), "b3": (1023, 8),
                   "a4": (1023, 9), "b4": (1023, 10), "a5": (0, 11)}
    assert cpu < 5, cpu  # certify + repair + re-certify: 0.12-0.18 s measured
    assert res.text is not None
    fixed = tmp_path / "fixed.dts"
    fixed.write_text(res.text)
    assert boot(Config.from_tree(load(str(fixed)), xen_profile("4.17"))).outcome == "booted"
