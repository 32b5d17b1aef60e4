"""The rules of the binding as data: one `Rule` per stable ID.

Each entry carries what every other place says about the rule, so that they take it
from here instead of wording it again: its severity and one-line title; its fix text
(what `check` prints after `= fix:`, and what `boot` records with the failure) and,
for the rules `fix` cannot repair by changing ports, what `fix` tells the user to
decide; the Xen function(s) whose behaviour it mirrors; the section of the spec that
defines it (a link target relative to spec/); and how `prove` covers it: the claim of
its Z3 obligation (proofs/encode.py `CLAIMS`), whether the universal claims over
/chosen orders and Xen versions cover it too (proofs/orders.py), or why `prove` does
not cover it (proofs/report.py `NOT_COVERED` for domain creation).

The same IDs appear in spec/binding.md (prose, rationale, failing example), in the
code that detects them (boot.py / check.py: grep for the constant), in the rule's
two cases (tests/data/rules/<ID>.fails.dts and <ID>.passes.dts, run by
tests/test_check_rules.py and shipped as the oracle's `rules` suite) and in the
Z3 encodings. spec/README.md's rule table is generated from this registry and the
code, and tests/test_rules_traceability.py pins it. IDs are stable: a rule is never
renumbered or reused.

Prefixes: DOM- domain creation (both dialects), XEN- the merged binding as Xen 4.17
walks it, SEED- the seed design, EVT- what Xen's port primitives decide (both
dialects), POL- the integrator's policy.
"""

from __future__ import annotations

from dataclasses import dataclass

# Why `prove` does not cover a rule ("not covered: ..."); ASSUMED is proofs/report.py's
# NOT_COVERED (the domain creation rules, listed in every `prove` report).
NOT_COVERED = "not covered: "
ASSUMED = NOT_COVERED + "domain creation is assumed, not proved; see `check`"
WARNING = NOT_COVERED + "a warning (Xen boots the tree); see `check`"
SEED_ONLY = NOT_COVERED + "a rule of `--dialect seed`, which `prove` refuses; see `check`"
POLICY = NOT_COVERED + "the integrator's policy, not Xen's; see `check --policy`"


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    severity: str  # "error" (Xen panics or a described channel is missing) | "warning"
    title: str
    # The fix text of a finding. A rule that fails in several ways has one per way, the
    # first the default; {name} fields are filled in per finding (`hint`).
    fixes: tuple[tuple[str, str], ...]
    xen: tuple[str, ...]  # the Xen function(s) it mirrors; () for none (not Xen's rule)
    anchor: str  # the spec section that defines it, relative to spec/ ("binding.md#id")
    prove: str  # the claim of its Z3 obligation, or NOT_COVERED + why
    orders: bool = False  # also a universal claim over /chosen orders and Xen versions
    decide: str = ""  # what `fix` says the user must decide (no port change repairs it)

    @property
    def fix(self) -> str:
        """The default fix text (a template where it names the finding's values)."""
        return self.fixes[0][1]

    @property
    def proved(self) -> bool:
        return not self.prove.startswith(NOT_COVERED)

    def hint(self, case: str = "", **values: object) -> str:
        """The fix text for one way the rule fails (`case`, "" the default), with the
        finding's values filled in."""
        text = dict(self.fixes)[case]
        return text.format(**values) if values else text


_RULES: dict[str, Rule] = {}


def _r(rule_id: str, severity: str, title: str, fix: str, xen: tuple[str, ...] | str,
       prove: str, *, more: dict[str, str] | None = None, orders: bool = False,
       decide: str = "") -> str:
    xen = (xen,) if isinstance(xen, str) else xen
    _RULES[rule_id] = Rule(rule_id, severity, title, (("", fix), *(more or {}).items()),
                           xen, "binding.md#" + rule_id.lower(), prove, orders, decide)
    return rule_id


_PLACEMENT = ("put the node directly inside its xen,domain node (or directly under /chosen "
              "for dom0, with a dom0 kernel)")

# -- domain creation (setup.c start_xen, domain_build.c create_dom0/create_domUs) --
DOM_MODULE_REG = _r("DOM-MODULE-REG", "error",
                    "a boot module under /chosen lacks a usable `reg`",
                    "give the module a reg = <address size> with the parent's cell counts",
                    "process_multiboot_node", ASSUMED)
DOM_NO_KERNEL = _r("DOM-NO-KERNEL", "error",
                   "no dom0 kernel and no domU kernel: Xen builds dom0 and finds no kernel",
                   'add a /chosen child with compatible = "multiboot,kernel", '
                   '"multiboot,module" and a reg (dom0), or give every xen,domain '
                   "node a kernel module (dom0less)",
                   ("kernel_probe", "create_dom0"), ASSUMED)
DOM_DIRECT_MAP = _r("DOM-DIRECT-MAP", "error", "direct-map without xen,static-mem",
                    "add xen,static-mem (on a build with CONFIG_STATIC_MEMORY) or "
                    "remove direct-map", "create_domUs", ASSUMED)
DOM_CPUS = _r("DOM-CPUS", "error", "xen,domain node without a usable `cpus`",
              "add `cpus = <1>;` to the domain node", ("create_domUs", "domain_create"),
              ASSUMED, more={"zero": "give the domain at least one vCPU"})
DOM_MEMORY = _r("DOM-MEMORY", "error", "xen,domain node without a 64-bit `memory`",
                "add `memory = <0x0 0x40000>;` (KiB, two cells)",
                ("construct_domU", "create_domUs"), ASSUMED)
DOM_KERNEL = _r("DOM-KERNEL", "error", "xen,domain node without a kernel boot module",
                'add a child with compatible = "multiboot,kernel", '
                '"multiboot,module" and a reg of non-zero size',
                ("kernel_probe", "create_domUs"), ASSUMED)
DOM_XENSTORE = _r("DOM-XENSTORE", "error",
                  "xen,enhanced asks for xenstore but there is no xenstore domain (dom0)",
                  'use xen,enhanced = "no-xenstore" (or drop it), or boot a dom0',
                  "construct_domU",
                  "every domain asking for xenstore has a xenstore domain",
                  more={"late-xenstore": 'use xen,enhanced = "no-xenstore", boot a dom0, or give a '
                                "domU the xenstore capability (4)"},
                  decide='write xen,enhanced = "no-xenstore" or add a dom0')
DOM_ENHANCED_VALUE = _r("DOM-ENHANCED-VALUE", "warning",
                        "an xen,enhanced value this Xen version does not know: "
                        "read as not enhanced",
                        'write "no-xenstore" (static channels only) or "enabled", or remove '
                        "the property", "construct_domU", WARNING)
DOM_CAPS = _r("DOM-CAPS", "error", "invalid `capabilities` (Xen 4.21+)",
              "use only CONTROL (1), HARDWARE (2) and XENSTORE (4)",
              ("parse_dom0less_node", "set_xs_domain"), ASSUMED,
              more={"hardware": "give the hardware capability to one domain only",
                    "iommu": "drop the HARDWARE capability (2), or direct-map the domain on "
                             "a machine with static memory",
                    "xenstore": "give the XENSTORE capability (4) to one domain only, and "
                                "none when dom0 is booted"})

# -- the merged binding, as alloc_static_evtchn / alloc_domain_evtchn walk it -----
XEN_COMPAT = _r("XEN-COMPAT", "error",
                "an event-channel node Xen skips (not compatible with xen,evtchn-v1), "
                "so its channel is never made",
                'write compatible = "xen,evtchn-v1" (on both ends)',
                ("alloc_domain_evtchn", "dt_device_is_compatible"),
                "every endpoint Xen skips is still in a channel",
                decide='write compatible = "xen,evtchn-v1"')
XEN_NOT_WALKED = _r("XEN-NOT-WALKED", "error",
                    "an event-channel node where Xen's walk never looks, so its channel "
                    "is never made", _PLACEMENT, "alloc_static_evtchn",
                    "every v1 endpoint Xen never visits is still in a channel",
                    decide="move the node directly inside its xen,domain node")
XEN_ONE_SIDED = _r("XEN-ONE-SIDED", "warning",
                   "a node Xen skips, whose channel exists only because its peer names it",
                   'add compatible = "xen,evtchn-v1"', "alloc_domain_evtchn", WARNING,
                   more={"not-walked": _PLACEMENT})
XEN_SEED_MIX = _r("XEN-SEED-MIX", "warning",
                  'the seed and xen dialects mixed: "xen,evtchn" vs "xen,evtchn-v1", '
                  "or 4 cells under a v1 node",
                  'write compatible = "xen,evtchn-v1"', "alloc_domain_evtchn", WARNING,
                  more={"cells": "write one sub-node per endpoint: xen,evtchn = <PORT &peer>"})
XEN_PROP_MISSING = _r("XEN-PROP-MISSING", "error", "no `xen,evtchn` property",
                      "add `xen,evtchn = <PORT &PEER>;` (local port, phandle of the peer "
                      "evtchn node)", "get_evtchn_dt_property",
                      "every visited node and its peer have xen,evtchn",
                      decide="write xen,evtchn = <PORT &peer> on the node")
XEN_PROP_SHORT = _r("XEN-PROP-SHORT", "error", "`xen,evtchn` shorter than 2 cells",
                    "write both cells: `xen,evtchn = <PORT &PEER>;`",
                    "get_evtchn_dt_property",
                    "every visited node's and peer's xen,evtchn has 2 cells",
                    decide="write both cells: <PORT &peer>")
XEN_PROP_EXTRA = _r("XEN-PROP-EXTRA", "warning", "`xen,evtchn` longer than 2 cells: Xen "
                    "ignores the rest", "remove everything after <PORT &PEER>",
                    "get_evtchn_dt_property", WARNING)
XEN_PEER_UNKNOWN = _r("XEN-PEER-UNKNOWN", "error", "the peer phandle names no node",
                      "point the second cell at the peer evtchn node: <PORT &peer_label>",
                      ("alloc_domain_evtchn", "dt_find_node_by_phandle"),
                      "every visited node's phandle names a node",
                      decide="point the phandle at the intended peer evtchn node, or add it")
XEN_PEER_ASYMMETRIC = _r("XEN-PEER-ASYMMETRIC", "error",
                         "the peer does not point back at this node",
                         "make {peer} point back: xen,evtchn = <{port} &{label}>",
                         "alloc_domain_evtchn", "every peer points back",
                         decide="decide which of the nodes naming this peer is its partner")
XEN_PEER_SELF = _r("XEN-PEER-SELF", "error", "a node that is its own peer",
                   "point the second cell at a different evtchn node",
                   ("evtchn_alloc_unbound", "evtchn_bind_interdomain"),
                   "no node is its own peer", decide="point the node at its real peer")
XEN_PEER_ROOT = _r("XEN-PEER-ROOT", "error", "the peer is the root node (it has no parent)",
                   "point at an evtchn node inside a domain node",
                   ("alloc_domain_evtchn", "dt_get_parent"), "no peer is the root node",
                   decide="point the node at an evtchn node inside a domain")
XEN_DOMAIN_UNKNOWN = _r("XEN-DOMAIN-UNKNOWN", "error",
                        "an endpoint whose parent belongs to no domain Xen created",
                        "put each evtchn node directly inside a xen,domain node (or directly "
                        "under /chosen for dom0, with a dom0 kernel)",
                        ("alloc_domain_evtchn", "get_domain_by_id"),
                        "both ends of every channel belong to a domain Xen created",
                        decide="move the node into a domain Xen creates (or add a dom0 "
                               "kernel)")
XEN_DOM0_IMPLICIT = _r("XEN-DOM0-IMPLICIT", "warning",
                       "an endpoint given to dom0 only because its parent's owner defaults to 0",
                       "move the node directly under /chosen (dom0's place)",
                       ("alloc_domain_evtchn", "dt_device_used_by"), WARNING)
XEN_STATUS_IGNORED = _r("XEN-STATUS-IGNORED", "warning",
                        "status on an event-channel node: Xen ignores it",
                        "remove the node (and its peer) to drop the channel, or remove "
                        "the status property", "alloc_domain_evtchn", WARNING)
XEN_PHANDLE_ZERO = _r("XEN-PHANDLE-ZERO", "warning",
                      "a back-reference of 0 accepted because the node has no phandle",
                      "label {node} and reference it: <{port} &label>",
                      "alloc_domain_evtchn", WARNING)
XEN_DUP_PHANDLE = _r("XEN-DUP-PHANDLE", "warning",
                     "two nodes share a phandle; Xen uses the first in tree order",
                     "give every node a unique phandle", "dt_find_node_by_phandle", WARNING)

# -- the seed design ---------------------------------------------------------------
SEED_UNMERGED = _r("SEED-UNMERGED", "error",
                   "a seed-dialect node: Xen 4.17 skips it, so its channel is never made "
                   "(--dialect seed boots it as designed)",
                   "rewrite it as two xen,evtchn-v1 sub-nodes of the domain nodes "
                   "(<PORT &peer>), or model the seed design with --dialect seed",
                   "alloc_domain_evtchn", "no seed-dialect node (Xen 4.17 skips them)",
                   decide="rewrite the seed node as two xen,evtchn-v1 nodes")
SEED_PROP = _r("SEED-PROP", "error", "seed `xen,evtchn` missing or shorter than 4 cells",
               "write all four cells", "get_evtchn_dt_property", SEED_ONLY)
SEED_PROP_EXTRA = _r("SEED-PROP-EXTRA", "warning", "seed `xen,evtchn` longer than 4 cells",
                     "remove the extra cells", (), WARNING)
SEED_DOMAIN = _r("SEED-DOMAIN", "error",
                 "a seed phandle that does not name a domain node Xen created",
                 "point the phandle at a xen,domain node under /chosen", (), SEED_ONLY)
SEED_PLACE = _r("SEED-PLACE", "error",
                "a seed node that is not a direct child of /chosen, so it is never read",
                "move it directly under /chosen", (), SEED_ONLY)
SEED_IGNORED = _r("SEED-IGNORED", "warning",
                  "an xen,evtchn-v1 node, not part of the seed binding (--dialect seed)",
                  "boot with --dialect xen (or auto) to read it", (), WARNING)

# -- Xen's port primitives (event_channel.c), both dialects -----------------------
EVT_PORT_RANGE = _r("EVT-PORT-RANGE", "error",
                    "port above max_evtchn_port (domU 1023) or the 2-level limit (4096)",
                    "use a port between 1 and {limit}", "evtchn_allocate_port",
                    "every port is within its domain's limit", orders=True)
EVT_PORT_BUSY = _r("EVT-PORT-BUSY", "error", "port already used in that domain",
                   "give each endpoint of a domain its own port", "evtchn_allocate_port",
                   "no two endpoints share a (domain, port), dynamic ports included",
                   orders=True)
EVT_PORT_XENSTORE = _r("EVT-PORT-XENSTORE", "error",
                       "port already taken by the xenstore channel Xen allocates",
                       'use another port (2 or above) or xen,enhanced = "no-xenstore" in '
                       "d{dom}", ("alloc_xenstore_evtchn", "evtchn_allocate_port"),
                       "no static port takes the xenstore port Xen allocated", orders=True)
EVT_PORT_ZERO = _r("EVT-PORT-ZERO", "error",
                   "port 0 on the side Xen allocates first: the bind then names port 0",
                   "write a non-zero port on this node",
                   ("alloc_domain_evtchn", "evtchn_bind_interdomain"),
                   "no side A asks for port 0", orders=True)
EVT_PORT_DYNAMIC = _r("EVT-PORT-DYNAMIC", "warning",
                      "port 0 on the side Xen binds second: it silently gets the lowest free "
                      "port", "write the port the guest will use, e.g. {port}",
                      ("evtchn_bind_interdomain", "get_free_port"), WARNING)
EVT_PORT_SPARSE = _r("EVT-PORT-SPARSE", "warning",
                     "port far above what the domain needs", "use small ports (1..{top})",
                     "evtchn_allocate_port", WARNING)
EVT_LOOPBACK = _r("EVT-LOOPBACK", "warning", "both ends in the same domain",
                  "check the peer phandle: loopback channels are legal but rarely meant",
                  "evtchn_bind_interdomain", WARNING)

# -- policy -----------------------------------------------------------------------
POL_DENIED = _r("POL-DENIED", "error", "a channel between domains the policy does not allow",
                "remove the channel or allow the pair in the policy file", (), POLICY)


def rule(rule_id: str) -> Rule:
    return _RULES[rule_id]


def all_rules() -> list[Rule]:
    return list(_RULES.values())


def hint(rule_id: str, case: str = "", **values: object) -> str:
    """The fix text of rule_id's finding (one way it fails: `case`), values filled in."""
    return _RULES[rule_id].hint(case, **values)
