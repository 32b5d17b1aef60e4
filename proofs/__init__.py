"""Z3 encodings of the binding rules and of the event-channel state machine."""
