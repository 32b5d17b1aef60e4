"""Universal claims: the port rules hold for every order of /chosen and every Xen version.

What the DT source does not fix is left free: the position of every /chosen child
(boot loaders and ImageBuilder or U-Boot `fdt` commands assemble /chosen at boot),
the position of every endpoint node among its parent's children, and the Xen
version (4.17 ... master, whose xenstore and port-limit rules differ). Xen's walk
order follows from the positions, so which side of a pair is allocated first
(side A), which starts pending (side B), the domids, and where a port-0 request
lands are all functions of those variables. One query per rule asks for an
order and a version that break it; `unsat` proves the rule for all of them.
When `sat`, the precedences the violation needs are found by asking again with
each one negated ("violated only when domU3 comes before domU1").

Built with the Python API: it is meant for configs of tens of endpoints.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import z3

from evtchn_spec.grammar.tree import Node
from evtchn_spec.refimpl import rules as R
from evtchn_spec.refimpl.config import KNOWN_VERSIONS, Config, versions_as_verified, xen_profile

from . import ports
from .facts import XENSTORE_PORT, build

VERSIONS = list(KNOWN_VERSIONS)
# The rules the universal claims cover (refimpl/rules.py: `orders`), in claim order.
ORDER_RULES = (R.EVT_PORT_ZERO, R.EVT_PORT_BUSY, R.EVT_PORT_XENSTORE, R.EVT_PORT_RANGE)


@dataclass(slots=True)
class _End:
    node: Node
    port: int
    dom: Node | None  # the domain node, None for dom0


def _pairs(cfg: Config) -> list[tuple[_End, _End, bool]]:
    """The channels of the config (from its own walk order) as unordered pairs, and
    whether both ends are visited (so either can be side A)."""
    f = build(cfg)
    domain_node = {d.domid: d.node for d in cfg.domains}
    visited = {id(e.node) for e in f.endpoints if e.walked and e.v1}
    out = []
    seen: set[frozenset[int]] = set()
    for at in f.attempts:
        key = frozenset((at.a, at.b))
        if key in seen or at.a == at.b:
            continue
        seen.add(key)
        na, nb = f.nodes[at.a], f.nodes[at.b]
        out.append((_End(na.node, na.port, domain_node.get(na.dom)),
                    _End(nb.node, nb.port, domain_node.get(nb.dom)),
                    id(na.node) in visited and id(nb.node) in visited))
    return out


def universal_claims(cfg: Config, timeout: float = 0.0) -> dict[str, Any]:
    """Prove EVT-PORT-ZERO/BUSY/XENSTORE/RANGE for every order and version."""
    t0 = time.perf_counter()
    chosen = cfg.chosen
    tree = cfg.tree
    pairs = _pairs(cfg)
    claim = (", ".join(ORDER_RULES) + " hold for "
             "every order of the /chosen children and of the endpoint nodes, and every "
             f"Xen release ({versions_as_verified(VERSIONS)})")
    if chosen is None or not pairs:
        return {"claim": claim, "status": "proved", "seconds": 0.0, "findings": [],
                "rules": {}}
    ctx = z3.Context()
    logic = ports.Z3(ctx)
    kids = list(chosen.children.values())
    pos = {id(c): z3.Int(f"pos[{c.name}]", ctx) for c in kids}
    cons: list[z3.BoolRef] = [z3.Distinct(*pos.values())] if len(kids) > 1 else []
    for v in pos.values():
        cons += [v >= 0, v < len(kids)]
    sub: dict[int, z3.ArithRef] = {}
    for c in kids:
        eps = [e for e in c.children.values() if id(e) in cfg.endpoint_of]
        for e in eps:
            sub[id(e)] = z3.Int(f"pos[{c.name}/{e.name}]", ctx)
            cons += [sub[id(e)] >= 0, sub[id(e)] < len(eps)]
        if len(eps) > 1:
            cons.append(z3.Distinct(*[sub[id(e)] for e in eps]))
    big = len(kids) + 2

    def key(n: Node) -> z3.ArithRef:
        if n.parent is chosen:
            return pos[id(n)] * big
        assert n.parent is not None
        return pos[id(n.parent)] * big + 1 + sub[id(n)]

    ver = z3.Int("xen_version", ctx)
    cons += [ver >= 0, ver < len(VERSIONS)]
    # Per-version facts about the domains: xenstore port and port limit.
    per_version = []
    for name in VERSIONS:
        vf = build(Config.from_tree(tree, xen_profile(name), cfg.dialect_mode))
        per_version.append({id(d.node) if d.node is not None else 0:
                            (vf.domains[d.domid].xenstore, vf.domains[d.domid].limit)
                            for d in cfg.domains if d.domid in vf.domains})

    def dom_key(dn: Node | None) -> int:
        return id(dn) if dn is not None else 0

    def xs(dn: Node | None) -> z3.BoolRef:
        k = dom_key(dn)
        e: z3.BoolRef = z3.BoolVal(False, ctx)
        for i, facts in enumerate(per_version):
            e = z3.If(ver == i, z3.BoolVal(facts.get(k, (False, 0))[0], ctx), e)
        return e

    def lim(dn: Node | None) -> z3.ArithRef:
        k = dom_key(dn)
        e: z3.ArithRef = z3.IntVal(0, ctx)
        for i, facts in enumerate(per_version):
            e = z3.If(ver == i, z3.IntVal(facts.get(k, (False, 0))[1], ctx), e)
        return e

    # Events: every end of every channel, with the time Xen allocates it.
    events: list[dict[str, Any]] = []
    zero_terms: list[tuple[z3.BoolRef, str]] = []
    for j, (x, y, both) in enumerate(pairs):
        if both:
            x_first = key(x.node) < key(y.node)
            t = z3.If(x_first, key(x.node), key(y.node))
        else:
            # only x is visited (y may even lie outside /chosen, with no place in the
            # order): Xen makes the channel when it reaches x
            x_first = z3.BoolVal(True, ctx)
            t = key(x.node)
        a_port = z3.If(x_first, x.port, y.port)
        zero_terms.append((a_port == 0, f"channel {x.node.path} <-> {y.node.path}: side A "
                           "asks for port 0"))
        for me, is_a in ((x, x_first), (y, z3.Not(x_first))):
            events.append({"end": me, "a": is_a, "t": t, "ch": j,
                           "port": z3.Int(f"port[{me.node.path}]", ctx)})
    groups: dict[int, list[dict[str, Any]]] = {}
    for ev in events:
        groups.setdefault(dom_key(ev["end"].dom), []).append(ev)
    for evs in groups.values():
        dn = evs[0]["end"].dom
        for ev in evs:
            req = ev["end"].port
            p = ev["port"]
            if req != 0:
                cons.append(p == req)
                continue
            earlier = []
            for fv in evs:
                if fv is ev:
                    continue
                same = fv["ch"] == ev["ch"]
                earlier.append((z3.Or(fv["t"] < ev["t"], z3.And(same, fv["a"])), fv["port"]))
            # Xen's get_free_port (ports.py); this model bounds it by no port limit
            lowest = ports.lowest_free(logic, p, earlier, xenstore=xs(dn))
            # side A with port 0 fails (EVT-PORT-ZERO); side B takes the lowest free port
            cons.append(z3.Implies(z3.Not(ev["a"]), lowest))
    no_zero = z3.And(*[z3.Not(c) for c, _ in zero_terms]) if zero_terms else z3.BoolVal(
        True, ctx)
    busy = []
    for evs in groups.values():
        for i, ev in enumerate(evs):
            for fv in evs[i + 1:]:
                busy.append((ev["port"] == fv["port"], ev, fv))
    violations: dict[str, list[tuple[z3.BoolRef, Any]]] = {
        R.EVT_PORT_ZERO: [(c, m) for c, m in zero_terms],
        R.EVT_PORT_BUSY: [(z3.And(no_zero, c), (e, f)) for c, e, f in busy],
        R.EVT_PORT_XENSTORE: [(z3.And(xs(e["end"].dom), e["port"] == XENSTORE_PORT,
                                      e["end"].port == XENSTORE_PORT), e) for e in events],
        R.EVT_PORT_RANGE: [(e["port"] > lim(e["end"].dom), e) for e in events
                           if e["end"].port != 0],
    }
    findings: list[dict[str, Any]] = []
    rules: dict[str, str] = {}
    status = "proved"
    for rule, terms in violations.items():
        if not terms:
            rules[rule] = "proved"
            continue
        s = z3.Solver(ctx=ctx)
        if timeout > 0:
            s.set("timeout", int(timeout * 1000))
        s.add(*cons)
        s.add(z3.Or(*[c for c, _ in terms]))
        ans = s.check()
        if ans == z3.unsat:
            rules[rule] = "proved"
            continue
        if ans != z3.sat:
            rules[rule] = "unknown"
            if status == "proved":
                status = "unknown"
            continue
        rules[rule] = "counterexample"
        status = "counterexample"
        m = s.model()
        order = sorted(kids, key=lambda c: m.eval(pos[id(c)]).as_long())
        version = VERSIONS[m.eval(ver).as_long()]
        what = ""
        for c, info in terms:
            if z3.is_true(m.eval(c, model_completion=True)):
                if rule == R.EVT_PORT_BUSY:
                    e, f = info
                    port = m.eval(e["port"]).as_long()
                    what = (f"{e['end'].node.path} and {f['end'].node.path} both get port "
                            f"{port}")
                elif rule == R.EVT_PORT_ZERO:
                    what = info
                else:
                    port = m.eval(info["port"]).as_long()
                    what = f"{info['end'].node.path} gets port {port}"
                break
        needs = _needed(s, m, kids, pos, ctx)
        cond = (" only when " + " and ".join(needs)) if needs else " in some orders"
        findings.append({
            "rule": rule,
            "message": f"{rule}: {what}, violated{cond} (e.g. Xen {version}, /chosen order "
                       + ", ".join(c.name for c in order) + ")",
            "version": version, "order": [c.name for c in order], "needs": needs})
    return {"claim": claim, "status": status, "seconds": round(time.perf_counter() - t0, 6),
            "findings": findings, "rules": rules}


def _needed(s: z3.Solver, m: z3.ModelRef, kids: list[Node], pos: dict[int, z3.ArithRef],
            ctx: z3.Context) -> list[str]:
    """The /chosen precedences of the model without which the violation disappears."""
    out: list[str] = []
    if len(kids) > 12:
        return out
    for i, c in enumerate(kids):
        for d in kids[i + 1:]:
            before = m.eval(pos[id(c)]).as_long() < m.eval(pos[id(d)]).as_long()
            lit = pos[id(c)] < pos[id(d)] if before else pos[id(d)] < pos[id(c)]
            s.push()
            s.add(z3.Not(lit))
            if s.check() == z3.unsat:
                first, second = (c, d) if before else (d, c)
                out.append(f"{first.name} comes before {second.name}")
            s.pop()
    return out
