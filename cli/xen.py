"""`evtchn-spec xen`: boot the tree on a real Xen release under QEMU and report what it
did, in boot's format. The runner itself is conformance/ (its own entry as well:
`python -m evtchn_spec.conformance.cli`); this only registers it."""

from __future__ import annotations

from typing import Any

from evtchn_spec.conformance.cli import cmd_xen, configure_parser


def register(sub: Any) -> None:
    p = sub.add_parser("xen", help="boot the tree on a real Xen release under QEMU and report "
                                   "what it did, in boot's format")
    configure_parser(p)
    p.set_defaults(handler=cmd_xen)
