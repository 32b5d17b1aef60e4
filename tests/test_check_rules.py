"""Every rule ID: a tree that breaks it (the finding names the right nodes at the
right lines) and a tree that does not. The table below must cover rules.all_rules()."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from evtchn_spec import rules as R
from evtchn_spec.check import CheckResult, check
from evtchn_spec.config import Config, xen_profile
from evtchn_spec.grammar import load
from evtchn_spec.grammar.dtb import write_dtb
from evtchn_spec.grammar.dump import to_dts
from evtchn_spec.grammar.errors import InputError
from evtchn_spec.grammar.tree import Node
from evtchn_spec.policy import Policy
from test_boot_model import System, cells, strings

Case = Callable[[bool], tuple[System, list[Node], dict[str, str]]]
CASES: dict[str, Case] = {}


def case(rule_id: str) -> Callable[[Case], Case]:
    def deco(fn: Case) -> Case:
        CASES[rule_id] = fn
        return fn
    return deco


def two(dom0: bool = False, **kw: object) -> tuple[System, Node, Node]:
    s = System(dom0=dom0)
    return s, s.domu("a", **kw), s.domu("b", **kw)  # type: ignore[arg-type]


@case(R.DOM_MODULE_REG)
def _module_reg(bad: bool) -> tuple[System, list[Node], dict[str, str]]:
    s, _a, _ = two()
    m = s.node(s.chosen, "module@9")
    s.prop(m, "compatible", strings("multiboot,ramdisk", "multiboot,module"))
    if not bad:
        s.prop(m, "reg", cells(0, 0x1000, 0x10))
    return s, [m], {}


@case(R.DOM_NO_KERNEL)
def _no_kernel(bad: bool) -> tuple[System, list[Node], dict[str, str]]:
    s = System(dom0=not bad)
    s.domu("a", kernel=not bad)
    return s, [s.chosen], {}


@case(R.DOM_DIRECT_MAP)
def _direct_map(bad: bool) -> tuple[System, list[Node], dict[str, str]]:
    s, a, _ = two()
    s.prop(a, "direct-map", b"")
    if not bad:
        s.prop(a, "xen,static-mem", cells(0, 0x1000_0000, 0x1000_0000))
    return s, [a], {}


@case(R.DOM_CPUS)
def _cpus(bad: bool) -> tuple[System, list[Node], dict[str, str]]:
    s = System(dom0=False)
    a = s.domu("a", cpus=None if bad else 2)
    return s, [a], {}


@case(R.DOM_MEMORY)
def _memory(bad: bool) -> tuple[System, list[Node], dict[str, str]]:
    s = System(dom0=False)
    a = s.domu("a", memory=not bad)
    return s, [a], {}


@case(R.DOM_KERNEL)
def _kernel(bad: bool) -> tuple[System, list[Node], dict[str, str]]:
    s = System(dom0=True)
    a = s.domu("a", kernel=not bad)
    return s, [a], {}


@case(R.DOM_XENSTORE)
def _xenstore(bad: bool) -> tuple[System, list[Node], dict[str, str]]:
    s = System(dom0=False)
    a = s.domu("a", enhanced="enabled" if bad else "no-xenstore")
    return s, [a], {}


@case(R.DOM_ENHANCED_VALUE)
def _enhanced_value(bad: bool) -> tuple[System, list[Node], dict[str, str]]:
    s = System(dom0=True)
    a = s.domu("a", enhanced="Enabled" if bad else "enabled")
    return s, [a], {}


@case(R.XEN_STATUS_IGNORED)
def _status(bad: bool) -> tuple[System, list[Node], dict[str, str]]:
    s, a, b = two()
    x, _y = s.pair(a, 5, b, 6)
    s.prop(x, "status", strings("disabled" if bad else "okay"))
    return s, [x], {}


@case(R.DOM_CAPS)
def _caps(bad: bool) -> tuple[System, list[Node], dict[str, str]]:
    s = System(dom0=True)
    a = s.domu("a")
    s.prop(a, "capabilities", cells(8 if bad else 1))
    return s, [a], {"xen": "4.21"}


@case(R.XEN_COMPAT)
def _compat(bad: bool) -> tuple[System, list[Node], dict[str, str]]:
    s, a, b = two()
    c = "xen,evtchn" if bad else "xen,evtchn-v1"
    x, _y = s.pair(a, 5, b, 6, compat_a=c, compat_b=c)
    return s, [x], {}


@case(R.XEN_NOT_WALKED)
def _not_walked(bad: bool) -> tuple[System, list[Node], dict[str, str]]:
    s, a, b = two(dom0=True)
    ga = s.node(a, "group") if bad else a
    gb = s.node(b, "group") if bad else b
    x, _y = s.pair(ga, 5, gb, 6)
    return s, [x], {}


@case(R.XEN_ONE_SIDED)
def _one_sided(bad: bool) -> tuple[System, list[Node], dict[str, str]]:
    s, a, b = two()
    x, y = s.pair(a, 5, b, 6, compat_b="vendor,evtchn" if bad else "xen,evtchn-v1")
    return s, [y, x], {}


@case(R.XEN_SEED_MIX)
def _seed_mix(bad: bool) -> tuple[System, list[Node], dict[str, str]]:
    s, a, b = two()
    _x, y = s.pair(a, 5, b, 6, compat_b="xen,evtchn" if bad else "xen,evtchn-v1")
    return s, [y], {}


@case(R.XEN_PROP_MISSING)
def _prop_missing(bad: bool) -> tuple[System, list[Node], dict[str, str]]:
    s, a, b = two()
    x, y = s.pair(a, 5, b, 6)
    if bad:
        del y.properties["xen,evtchn"]
    return s, [y, x], {}


@case(R.XEN_PROP_SHORT)
def _prop_short(bad: bool) -> tuple[System, list[Node], dict[str, str]]:
    s, a, b = two()
    x, _y = s.pair(a, 5, b, 6)
    if bad:
        s.prop(x, "xen,evtchn", cells(5)[:3])
    return s, [x], {}


@case(R.XEN_PROP_EXTRA)
def _prop_extra(bad: bool) -> tuple[System, list[Node], dict[str, str]]:
    s, a, b = two()
    x, y = s.pair(a, 5, b, 6)
    if bad:
        s.set_link(x, 5, y, 7)
    return s, [x], {}


@case(R.XEN_PEER_UNKNOWN)
def _peer_unknown(bad: bool) -> tuple[System, list[Node], dict[str, str]]:
    s, a, b = two()
    x, _y = s.pair(a, 5, b, 6)
    if bad:
        s.set_link(x, 5, 0x4242)
    return s, [x], {}


@case(R.XEN_PEER_ASYMMETRIC)
def _asym(bad: bool) -> tuple[System, list[Node], dict[str, str]]:
    s, a, b = two()
    x, _y = s.pair(a, 5, b, 6)
    z = s.evtchn(b, "evtchn@99")
    s.set_link(z, 9, x if bad else z)  # z points at x, which points at y
    if not bad:
        del z.properties["compatible"]
    return s, [z, x], {}


@case(R.XEN_PEER_SELF)
def _self(bad: bool) -> tuple[System, list[Node], dict[str, str]]:
    s, a, b = two()
    x = s.evtchn(a, "evtchn@1")
    if bad:
        s.set_link(x, 5, x)
    else:
        y = s.evtchn(b, "evtchn@2")
        s.set_link(x, 5, y)
        s.set_link(y, 5, x)
    return s, [x], {}


@case(R.XEN_PEER_ROOT)
def _root(bad: bool) -> tuple[System, list[Node], dict[str, str]]:
    s, a, b = two()
    x = s.evtchn(a, "evtchn@1")
    peer = s.root if bad else s.evtchn(b, "evtchn@2")
    s.set_link(x, 5, peer)
    s.set_link(peer, 6, x)
    return s, [x, peer], {}


@case(R.XEN_DOMAIN_UNKNOWN)
def _domain_unknown(bad: bool) -> tuple[System, list[Node], dict[str, str]]:
    s = System(dom0=not bad)
    u = s.domu("u")
    d0 = s.evtchn(s.chosen, "evtchn@1")
    e = s.evtchn(u, "evtchn@2")
    s.set_link(d0, 10, e)
    s.set_link(e, 11, d0)
    return s, [d0, e], {}


@case(R.XEN_DOM0_IMPLICIT)
def _dom0_implicit(bad: bool) -> tuple[System, list[Node], dict[str, str]]:
    s = System(dom0=True)
    u = s.domu("u")
    holder = s.node(s.chosen, "group") if bad else s.chosen
    d0 = s.evtchn(holder, "evtchn@1")
    e = s.evtchn(u, "evtchn@2")
    s.set_link(d0, 10, e)
    s.set_link(e, 11, d0)
    return s, [d0], {}


@case(R.XEN_PHANDLE_ZERO)
def _phandle_zero(bad: bool) -> tuple[System, list[Node], dict[str, str]]:
    s, a, b = two()
    x = s.node(a, "evtchn@1")
    s.prop(x, "compatible", strings("xen,evtchn-v1"))
    if not bad:
        s.phandle(x)
    y = s.evtchn(b, "evtchn@2")
    s.set_link(x, 5, y)
    s.set_link(y, 6, 0 if bad else x)
    return s, [y, x], {}


@case(R.XEN_DUP_PHANDLE)
def _dup_phandle(bad: bool) -> tuple[System, list[Node], dict[str, str]]:
    s, a, b = two()
    x, _y = s.pair(a, 5, b, 6)
    other = s.node(b, "shadow")
    s.prop(other, "phandle", cells(s.phandle(x) if bad else 0x5555))
    return s, [x, other], {}


def _seed_node(s: System, parent: Node, value: bytes, compat: str = "xen,evtchn") -> Node:
    n = s.node(parent, "evtchn@100")
    s.prop(n, "compatible", strings(compat))
    s.prop(n, "xen,evtchn", value)
    return n


@case(R.SEED_PROP)
def _seed_prop(bad: bool) -> tuple[System, list[Node], dict[str, str]]:
    s, a, b = two()
    v = cells(5, s.phandle(a), 6) if bad else cells(5, s.phandle(a), 6, s.phandle(b))
    n = _seed_node(s, s.chosen, v)
    return s, [n], {"dialect": "seed"}


@case(R.SEED_PROP_EXTRA)
def _seed_extra(bad: bool) -> tuple[System, list[Node], dict[str, str]]:
    s, a, b = two()
    v = cells(5, s.phandle(a), 6, s.phandle(b), *([1] if bad else []))
    n = _seed_node(s, s.chosen, v)
    return s, [n], {"dialect": "seed"}


@case(R.SEED_UNMERGED)
def _seed_unmerged(bad: bool) -> tuple[System, list[Node], dict[str, str]]:
    s, a, b = two()
    n = _seed_node(s, s.chosen, cells(5, s.phandle(a), 6, s.phandle(b)))
    return s, [n, a, b], {"dialect": "auto" if bad else "seed"}


@case(R.SEED_DOMAIN)
def _seed_domain(bad: bool) -> tuple[System, list[Node], dict[str, str]]:
    s, a, b = two()
    target = s.chosen if bad else b
    n = _seed_node(s, s.chosen, cells(5, s.phandle(a), 6, s.phandle(target)))
    return s, [n], {"dialect": "seed"}


@case(R.SEED_PLACE)
def _seed_place(bad: bool) -> tuple[System, list[Node], dict[str, str]]:
    s, a, b = two()
    n = _seed_node(s, a if bad else s.chosen, cells(5, s.phandle(a), 6, s.phandle(b)))
    return s, [n], {"dialect": "seed"}


@case(R.SEED_IGNORED)
def _seed_ignored(bad: bool) -> tuple[System, list[Node], dict[str, str]]:
    s, a, b = two()
    if bad:
        x, _ = s.pair(a, 5, b, 6)
    else:
        x = _seed_node(s, s.chosen, cells(5, s.phandle(a), 6, s.phandle(b)))
    return s, [x], {"dialect": "seed"}


@case(R.EVT_PORT_RANGE)
def _range(bad: bool) -> tuple[System, list[Node], dict[str, str]]:
    s, a, b = two()
    x, y = s.pair(a, 1024 if bad else 1023, b, 6)
    return s, [x, y], {}


@case(R.EVT_PORT_BUSY)
def _busy(bad: bool) -> tuple[System, list[Node], dict[str, str]]:
    s, a, b = two()
    _x, _y = s.pair(a, 5, b, 6)
    z, w = s.pair(a, 7, b, 6 if bad else 8)
    return s, [w, z], {}


@case(R.EVT_PORT_XENSTORE)
def _xs(bad: bool) -> tuple[System, list[Node], dict[str, str]]:
    s, a, b = two(dom0=True, enhanced="enabled")
    x, y = s.pair(a, 1 if bad else 2, b, 3)
    return s, [x, y], {}


@case(R.EVT_PORT_ZERO)
def _zero(bad: bool) -> tuple[System, list[Node], dict[str, str]]:
    s, a, b = two()
    x, y = s.pair(a, 0 if bad else 4, b, 6)
    return s, [x, y], {}


@case(R.EVT_PORT_DYNAMIC)
def _dynamic(bad: bool) -> tuple[System, list[Node], dict[str, str]]:
    s, a, b = two()
    x, y = s.pair(a, 4, b, 0 if bad else 6)
    return s, [y, x], {}


@case(R.EVT_PORT_SPARSE)
def _sparse(bad: bool) -> tuple[System, list[Node], dict[str, str]]:
    s, a, b = two()
    x, _y = s.pair(a, 700 if bad else 7, b, 6)
    return s, [x], {}


@case(R.EVT_LOOPBACK)
def _loop(bad: bool) -> tuple[System, list[Node], dict[str, str]]:
    s, a, b = two()
    x, y = s.pair(a, 4, a if bad else b, 6)
    return s, [x, y], {}


@case(R.POL_DENIED)
def _policy(bad: bool) -> tuple[System, list[Node], dict[str, str]]:
    s, a, b = two()
    x, y = s.pair(a, 4, b, 6)
    return s, [x, y], {"policy": "deny" if bad else "allow"}


def _run(fn: Case, bad: bool) -> tuple[CheckResult, System, list[Node]]:
    s, nodes, opts = fn(bad)
    policy = None
    if "policy" in opts:
        pairs = frozenset() if opts["policy"] == "deny" else frozenset(
            {frozenset({"a", "b"})})
        policy = Policy(False, pairs, "policy.toml")
    cfg = s.config(xen=opts.get("xen", "4.17"), dialect=opts.get("dialect", "auto"))
    return check(cfg, policy=policy), s, nodes


def _lines_of(node: Node) -> set[int]:
    return {node.span.line} | {p.span.line for p in node.properties.values()}


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_rule_fires_on_the_breaking_tree_and_points_at_its_nodes(rule_id: str) -> None:
    res, _s, nodes = _run(CASES[rule_id], True)
    hits = [f for f in res.findings if f.rule == rule_id]
    assert hits, [f.rule for f in res.findings]
    f = hits[0]
    assert f.severity == R.rule(rule_id).severity
    named = {lc.node for lc in f.locations}
    for n in nodes:
        assert n.path in named, (n.path, named)
    by_path = {n.path: n for n in nodes}
    for lc in f.locations:
        if lc.node in by_path:
            assert lc.line in _lines_of(by_path[lc.node]), (lc, by_path[lc.node].path)
    assert f.hint
    if f.severity == "error":
        assert res.verdict() == "violations"


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_rule_is_silent_on_the_fixed_tree(rule_id: str) -> None:
    res, _s, _nodes = _run(CASES[rule_id], False)
    assert rule_id not in {f.rule for f in res.findings}, [
        (f.rule, f.message) for f in res.findings]


def test_every_rule_has_a_case_and_a_spec_entry() -> None:
    ids = {r.id for r in R.all_rules()}
    assert ids == set(CASES)
    spec = (Path(__file__).resolve().parent.parent / "spec" / "binding.md").read_text()
    documented = set(re.findall(r"^#+ .*?`([A-Z]+(?:-[A-Z0-9]+)+)`", spec, re.M))
    assert ids <= documented, sorted(ids - documented)


def test_all_findings_are_reported_not_just_the_first() -> None:
    s, a, b = two()
    s.pair(a, 1024, b, 6)
    s.pair(a, 5, b, 2000)
    x, _ = s.pair(a, 7, b, 8)
    s.set_link(x, 7, 0x4242)
    res = check(s.config())
    rules = [f.rule for f in res.findings if f.severity == "error"]
    assert rules.count(R.EVT_PORT_RANGE) == 2 and R.XEN_PEER_UNKNOWN in rules


def test_strict_turns_warnings_into_errors() -> None:
    s, a, _b = two()
    s.pair(a, 4, a, 6)
    assert check(s.config()).verdict() == "ok"
    res = check(s.config(), strict=True)
    assert res.verdict() == "violations" and {f.severity for f in res.findings} == {"error"}


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_rule_locations_through_the_dts_front_end(rule_id: str, tmp_path: Path) -> None:
    """The breaking tree written as DTS and read back by the real parser: the
    finding's every location is a line of that DTS that opens the named node or
    sets one of its properties."""
    s, _nodes, opts = CASES[rule_id](True)
    text = to_dts(s.tree())
    path = tmp_path / f"{rule_id}.dts"
    path.write_text(text)
    if rule_id == R.XEN_DUP_PHANDLE:
        # Both front ends refuse duplicated phandles, as dtc does (exit 2), though
        # Xen would boot such a DTB: the rule only fires for trees built in memory.
        blob = tmp_path / f"{rule_id}.dtb"
        blob.write_bytes(write_dtb(s.tree()))
        for p in (path, blob):
            with pytest.raises(InputError, match="duplicated phandle"):
                load(p)
        return
    tree = load(path)
    cfg = Config.from_tree(tree, xen_profile(opts.get("xen", "4.17")),
                           opts.get("dialect", "auto"))
    policy = Policy(False, frozenset(), "p.toml") if opts.get("policy") == "deny" else None
    res = check(cfg, policy=policy)
    hits = [f for f in res.findings if f.rule == rule_id]
    assert hits
    lines = text.splitlines()
    for lc in hits[0].locations:
        assert lc.file == str(path)
        node = tree.find(lc.node)
        assert node is not None, lc.node
        src = lines[lc.line - 1].strip()
        opens = src.startswith(f"{node.name} {{") or (node.parent is None and src == "/ {")
        sets = any(src.startswith(f"{p} =") or src == f"{p};" for p in node.properties)
        assert opens or sets, (lc, src)
