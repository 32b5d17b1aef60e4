"""The case data of `evtchn-spec vectors`, installed as the package `evtchn_spec.cases`.

pyproject.toml maps this folder to that package and ships rules/, xen/, runtime/ and
boot/ as its data (not corpus/). This file only makes it a regular package, which
setuptools' editable installs can find; it holds no code.
"""
