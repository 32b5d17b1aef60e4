"""Hypothesis: `fix` on configs whose only problems are ports (collisions, xenstore
port, range, port 0 on either side) returns DTS that the reference boot accepts,
that differs from the input only in port cells, and that changes no more cells
than a simple valid repair needs (one per offending endpoint)."""

from __future__ import annotations

from pathlib import Path

from evtchn_spec.boot import boot
from evtchn_spec.config import Config, xen_profile
from evtchn_spec.grammar import load
from evtchn_spec.proofs.repair import repair
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
