"""evtchn-spec: specification, reference implementation and proofs of Xen static event
channels."""

__version__ = "0.1.0"
