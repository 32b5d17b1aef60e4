"""Rule IDs of the binding, each with its one-line title and default severity.

The same IDs appear in spec/binding.md (prose, rationale, failing example), in the
code that detects them (boot.py / check.py: grep for the constant), in the rule's
two cases (tests/data/rules/<ID>.fails.dts and <ID>.passes.dts, run by
tests/test_check_rules.py and shipped as the oracle's `rules` suite) and in the
Z3 encodings. IDs are stable: a rule is never renumbered or reused.

Prefixes: DOM- domain creation (both dialects), XEN- the merged binding as Xen 4.17
walks it, SEED- the seed design, EVT- what Xen's port primitives decide (both
dialects), POL- the integrator's policy.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    severity: str  # "error" (Xen panics or a described channel is missing) | "warning"
    title: str


_RULES: dict[str, Rule] = {}


def _r(rule_id: str, severity: str, title: str) -> str:
    _RULES[rule_id] = Rule(rule_id, severity, title)
    return rule_id


# -- domain creation (setup.c start_xen, domain_build.c create_dom0/create_domUs) --
DOM_MODULE_REG = _r("DOM-MODULE-REG", "error",
                    "a boot module under /chosen lacks a usable `reg`")
DOM_NO_KERNEL = _r("DOM-NO-KERNEL", "error",
                   "no dom0 kernel and no domU kernel: Xen builds dom0 and finds no kernel")
DOM_DIRECT_MAP = _r("DOM-DIRECT-MAP", "error", "direct-map without xen,static-mem")
DOM_CPUS = _r("DOM-CPUS", "error", "xen,domain node without a usable `cpus`")
DOM_MEMORY = _r("DOM-MEMORY", "error", "xen,domain node without a 64-bit `memory`")
DOM_KERNEL = _r("DOM-KERNEL", "error", "xen,domain node without a kernel boot module")
DOM_XENSTORE = _r("DOM-XENSTORE", "error",
                  "xen,enhanced asks for xenstore but there is no xenstore domain (dom0)")
DOM_ENHANCED_VALUE = _r("DOM-ENHANCED-VALUE", "warning",
                        "an xen,enhanced value this Xen version does not know: "
                        "read as not enhanced")
DOM_CAPS = _r("DOM-CAPS", "error", "invalid `capabilities` (Xen 4.21+)")

# -- the merged binding, as alloc_static_evtchn / alloc_domain_evtchn walk it -----
XEN_COMPAT = _r("XEN-COMPAT", "error",
                "an event-channel node Xen skips (not compatible with xen,evtchn-v1), "
                "so its channel is never made")
XEN_NOT_WALKED = _r("XEN-NOT-WALKED", "error",
                    "an event-channel node where Xen's walk never looks, so its channel "
                    "is never made")
XEN_ONE_SIDED = _r("XEN-ONE-SIDED", "warning",
                   "a node Xen skips, whose channel exists only because its peer names it")
XEN_SEED_MIX = _r("XEN-SEED-MIX", "warning",
                  'the seed and xen dialects mixed: "xen,evtchn" vs "xen,evtchn-v1", '
                  "or 4 cells under a v1 node")
XEN_PROP_MISSING = _r("XEN-PROP-MISSING", "error", "no `xen,evtchn` property")
XEN_PROP_SHORT = _r("XEN-PROP-SHORT", "error", "`xen,evtchn` shorter than 2 cells")
XEN_PROP_EXTRA = _r("XEN-PROP-EXTRA", "warning", "`xen,evtchn` longer than 2 cells: Xen "
                    "ignores the rest")
XEN_PEER_UNKNOWN = _r("XEN-PEER-UNKNOWN", "error", "the peer phandle names no node")
XEN_PEER_ASYMMETRIC = _r("XEN-PEER-ASYMMETRIC", "error",
                         "the peer does not point back at this node")
XEN_PEER_SELF = _r("XEN-PEER-SELF", "error", "a node that is its own peer")
XEN_PEER_ROOT = _r("XEN-PEER-ROOT", "error", "the peer is the root node (it has no parent)")
XEN_DOMAIN_UNKNOWN = _r("XEN-DOMAIN-UNKNOWN", "error",
                        "an endpoint whose parent belongs to no domain Xen created")
XEN_DOM0_IMPLICIT = _r("XEN-DOM0-IMPLICIT", "warning",
                       "an endpoint given to dom0 only because its parent's owner defaults to 0")
XEN_STATUS_IGNORED = _r("XEN-STATUS-IGNORED", "warning",
                        "status on an event-channel node: Xen ignores it")
XEN_PHANDLE_ZERO = _r("XEN-PHANDLE-ZERO", "warning",
                      "a back-reference of 0 accepted because the node has no phandle")
XEN_DUP_PHANDLE = _r("XEN-DUP-PHANDLE", "warning",
                     "two nodes share a phandle; Xen uses the first in tree order")

# -- the seed design ---------------------------------------------------------------
SEED_UNMERGED = _r("SEED-UNMERGED", "error",
                   "a seed-dialect node: Xen 4.17 skips it, so its channel is never made "
                   "(--dialect seed boots it as designed)")
SEED_PROP = _r("SEED-PROP", "error", "seed `xen,evtchn` missing or shorter than 4 cells")
SEED_PROP_EXTRA = _r("SEED-PROP-EXTRA", "warning", "seed `xen,evtchn` longer than 4 cells")
SEED_DOMAIN = _r("SEED-DOMAIN", "error",
                 "a seed phandle that does not name a domain node Xen created")
SEED_PLACE = _r("SEED-PLACE", "error",
                "a seed node that is not a direct child of /chosen, so it is never read")
SEED_IGNORED = _r("SEED-IGNORED", "warning",
                  "an xen,evtchn-v1 node, not part of the seed binding (--dialect seed)")

# -- Xen's port primitives (event_channel.c), both dialects -----------------------
EVT_PORT_RANGE = _r("EVT-PORT-RANGE", "error",
                    "port above max_evtchn_port (domU 1023) or the 2-level limit (4096)")
EVT_PORT_BUSY = _r("EVT-PORT-BUSY", "error", "port already used in that domain")
EVT_PORT_XENSTORE = _r("EVT-PORT-XENSTORE", "error",
                       "port already taken by the xenstore channel Xen allocates")
EVT_PORT_ZERO = _r("EVT-PORT-ZERO", "error",
                   "port 0 on the side Xen allocates first: the bind then names port 0")
EVT_PORT_DYNAMIC = _r("EVT-PORT-DYNAMIC", "warning",
                      "port 0 on the side Xen binds second: it silently gets the lowest free port")
EVT_PORT_SPARSE = _r("EVT-PORT-SPARSE", "warning",
                     "port far above what the domain needs")
EVT_LOOPBACK = _r("EVT-LOOPBACK", "warning", "both ends in the same domain")

# -- policy -----------------------------------------------------------------------
POL_DENIED = _r("POL-DENIED", "error", "a channel between domains the policy does not allow")


def rule(rule_id: str) -> Rule:
    return _RULES[rule_id]


def all_rules() -> list[Rule]:
    return list(_RULES.values())
