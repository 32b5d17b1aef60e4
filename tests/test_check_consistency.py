"""Hypothesis: over generated systems and mutations, `check` reports an error exactly
when `boot` panics or a channel the tree describes is missing after boot, and the
keep-going boot's first failure is the panic of the real boot."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_boot_model import MUTATIONS, System, cells, mutate_link, strings

from evtchn_spec.grammar import load
from evtchn_spec.grammar.tree import Node, Property
from evtchn_spec.refimpl import rules as R
from evtchn_spec.refimpl.boot import boot
from evtchn_spec.refimpl.check import check
from evtchn_spec.refimpl.config import Config, Dialect

PORTS = st.one_of(st.sampled_from([0, 1, 2, 3, 63, 64, 1023, 1024, 4095, 4096]),
                  st.integers(min_value=1, max_value=40))
COMPATS = st.sampled_from(["xen,evtchn-v1", "xen,evtchn-v1", "xen,evtchn-v1", "XEN,EVTCHN-V1",
                           "xen,evtchn", "vendor,other", None])


@st.composite
def systems(draw: st.DrawFn) -> tuple[System, str, str]:
    s = System(dom0=draw(st.booleans()))
    n = draw(st.integers(min_value=1, max_value=4))
    doms = [s.domu(f"d{i}", enhanced=draw(st.sampled_from(
        [None, "no-xenstore", "no-xenstore", "enabled", "disabled"]))) for i in range(n)]
    parents: list[Node] = [*doms, s.chosen]
    if draw(st.booleans()):
        parents.append(s.node(doms[0], "group"))
    nodes: list[Node] = []
    for k in range(draw(st.integers(min_value=0, max_value=8))):
        parent = draw(st.sampled_from(parents))
        nodes.append(s.evtchn(parent, f"evtchn@{k}", draw(COMPATS)))
    # links: mostly symmetric pairs, sometimes broken ones
    order = draw(st.permutations(list(range(len(nodes)))))
    for i in range(0, len(order) - 1, 2):
        a, b = nodes[order[i]], nodes[order[i + 1]]
        s.set_link(a, draw(PORTS), b)
        s.set_link(b, draw(PORTS), a)
    for node in nodes:
        mut = draw(st.sampled_from(["keep"] * 6 + list(MUTATIONS)))
        mutate_link(s, node, mut, draw(PORTS))
    if draw(st.booleans()) and len(doms) >= 2:  # a seed node
        seed = s.node(s.chosen, "evtchn@seed")
        s.prop(seed, "compatible", strings("xen,evtchn"))
        s.prop(seed, "xen,evtchn", cells(draw(PORTS), s.phandle(doms[0]), draw(PORTS),
                                         s.phandle(doms[-1])))
    return s, draw(st.sampled_from(["auto", "xen", "seed"])), draw(
        st.sampled_from(["4.17", "4.17", "4.21"]))


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(systems())
def test_error_iff_panic_or_missing_channel(sys_: tuple[System, str, str]) -> None:
    s, dialect, xen = sys_
    cfg = s.config(xen=xen, dialect=dialect)
    real = boot(cfg)
    res = check(cfg)
    described = [e for e in cfg.endpoints
                 if not (e.dialect is Dialect.SEED and e.v1 and not e.seed_compat)]
    missing = [e.node.path for e in described if id(e.node) not in real.realised]
    expect_error = real.outcome == "panic" or bool(missing)
    assert (res.errors > 0) == expect_error, (real.outcome, missing,
                                              [(f.rule, f.message) for f in res.findings])
    if real.outcome == "panic":
        first = res.boot.failures[0]
        assert real.failure is not None
        assert (first.rule, first.error, first.panic, first.node) == (
            real.failure.rule, real.failure.error, real.failure.panic, real.failure.node)
    else:
        assert res.boot.failures == []
        # the keep-going boot of a good tree is the real boot
        assert res.boot.to_json() == real.to_json()


@settings(max_examples=100, deadline=None)
@given(systems())
def test_booted_state_is_consistent(sys_: tuple[System, str, str]) -> None:
    """After a boot, every interdomain port's peer points back, and exactly the
    bind side of each static channel is pending."""
    s, dialect, xen = sys_
    res = boot(s.config(xen=xen, dialect=dialect))
    if res.outcome != "booted":
        return
    doc = res.to_json()
    table = {(int(k), p["port"]): p for k, v in doc["domains"].items() for p in v["ports"]}
    for (dom, port), p in table.items():
        if p["status"] == "interdomain":
            peer = table[(p["remote_dom"], p["remote_port"])]
            assert (peer["remote_dom"], peer["remote_port"]) == (dom, port)
        assert port != 0
    pending = {k for k, p in table.items() if p["pending"]}
    assert pending == {(c.dom_b, c.port_b) for c in res.channels}
    assert all(rule in {r.id for r in R.all_rules()} for rule in
               (q.rule for q in res.quirks))


CORPUS = sorted((Path(__file__).resolve().parent / "data" / "xen").glob("*.dts"))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(CORPUS), st.data())
def test_error_iff_panic_or_missing_channel_on_mutated_real_trees(path: Path,
                                                                   data: st.DataObject) -> None:
    """The same property on the conformance corpus (trees that ran on real Xen), each
    mutated: ports, peers, compatibles and property lengths changed at random."""
    tree = load(path)
    nodes = [n for n in tree.walk() if "xen,evtchn" in n.properties]
    phandles = [n.phandle for n in tree.walk() if n.phandle] or [1]
    for node in nodes:
        prop = node.properties["xen,evtchn"]
        mut = data.draw(st.sampled_from(["keep", "keep", "port", "peer", "compat", "cut"]))
        cells_ = prop.cells()
        if mut == "port" and cells_:
            cells_[0] = data.draw(PORTS)
            prop.value = cells(*cells_)
        elif mut == "peer" and len(cells_) >= 2:
            cells_[1] = data.draw(st.sampled_from([*phandles, 0, 0xABCD]))
            prop.value = cells(*cells_)
        elif mut == "compat":
            node.properties["compatible"] = Property("compatible", strings(
                data.draw(COMPATS) or "none"), prop.span)
        elif mut == "cut":
            prop.value = prop.value[:data.draw(st.integers(min_value=0, max_value=8))]
    cfg = Config.from_tree(tree)
    real = boot(cfg)
    res = check(cfg)
    missing = [e for e in cfg.endpoints if id(e.node) not in real.realised]
    assert (res.errors > 0) == (real.outcome == "panic" or bool(missing))


PROP_NAMES = ["xen,evtchn", "compatible", "cpus", "memory", "xen,enhanced", "reg", "phandle",
              "linux,phandle", "direct-map", "capabilities", "#address-cells"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(min_value=0, max_value=30), st.sampled_from(PROP_NAMES),
                          st.binary(max_size=20)), max_size=40),
       st.sampled_from(["auto", "xen", "seed"]), st.sampled_from(["4.17", "4.21"]))
def test_hostile_property_values_never_crash(edits: list[tuple[int, str, bytes]], dialect: str,
                                             xen: str) -> None:
    """Arbitrary bytes in every property the model reads: boot, check, table and
    every renderer finish (a bad tree is a finding, never an exception)."""
    from evtchn_spec.render import report
    from evtchn_spec.render import table as tbl

    s = System(dom0=bool(len(edits) % 2))
    doms = [s.domu(f"d{i}") for i in range(3)]
    nodes = [s.root, s.chosen, *doms]
    for i, d in enumerate(doms):
        nodes.append(s.evtchn(d, f"evtchn@{i}"))
        nodes.append(s.node(d, f"module@{i + 7}"))
    for idx, name, value in edits:
        s.prop(nodes[idx % len(nodes)], name, value)
    cfg = s.config(xen=xen, dialect=dialect)
    res = check(cfg, strict=True)
    report.to_text(res, colour=True)
    report.to_json(res)
    report.to_sarif(res)
    b = boot(cfg, trace=True)
    b.to_json()
    tbl.to_text(tbl.rows(res.boot))
