"""The oracle: what other implementations of Xen static event channels are checked
against. `vectors` writes conformance vectors (each case's input tree and the
outputs the reference computes for it, spec/oracle.md); `diff` runs another
implementation as a command on them and reports every disagreement; `compare` is
the one comparator of two `boot` or `run` documents, with a profile per use (the
diff protocol's normative fields, or what a recording on the real Xen shows);
`common` holds what the others and the command line share."""
