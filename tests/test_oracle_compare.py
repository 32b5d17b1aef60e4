"""The one comparator (oracle/compare.py), property-based: empty on equal documents,
symmetric (swapping the sides swaps expected and got, nothing else), and each profile
compares exactly its fields (spec/oracle.md, "Comparison profiles")."""

from __future__ import annotations

import copy
from collections import Counter
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evtchn_spec.oracle.compare import (
    ABSENT,
    DIFF_PROTOCOL,
    PORT_FIELDS,
    REAL_XEN,
    Difference,
    Profile,
    compare_boot,
    compare_run,
)

PROFILES = (DIFF_PROTOCOL, REAL_XEN)
# every per-port field a document may carry, compared or not
ALL_PORT_FIELDS = (*PORT_FIELDS, "vcpu", "virq", "linked")
value_st = st.one_of(st.booleans(), st.integers(0, 9), st.none(),
                     st.sampled_from(["unbound", "interdomain", "closed"]))
port_st = st.fixed_dictionaries({f: value_st for f in ALL_PORT_FIELDS})
domain_st = st.builds(
    lambda name, ports: {"name": name, "ports": [dict(p, port=n) for n, p in ports.items()]},
    st.sampled_from(["dom0", "domU1", "x"]),
    st.dictionaries(st.sampled_from([1, 2, 3, 10, 11, 100, 1023]), port_st, max_size=4))
booted_st = st.dictionaries(st.sampled_from(["0", "1", "2", "10"]), domain_st, max_size=3).map(
    lambda d: {"format": 1, "outcome": "booted", "domains": d, "dialect": "xen"})
panic_st = st.builds(lambda e, p, n: {"format": 1, "outcome": "panic", "error": e, "panic": p,
                                      "node": n, "rule": "R"},
                     st.sampled_from([None, "e ", "f"]), st.sampled_from(["p", "q"]),
                     st.sampled_from([None, "/a", "/b"]))
boot_st = st.one_of(booted_st, panic_st)
CHANGE_FIELDS = (*ALL_PORT_FIELDS, "abi", "domain", "upcall_pending", "pending_sel")
change_st = st.builds(
    lambda dom, port, f, a, b: {"dom": dom, "field": f, "from": a, "to": b} | (
        {} if f in ("abi", "domain", "upcall_pending", "pending_sel") else {"port": port}),
    st.integers(0, 2), st.sampled_from([1, 2, 10]), st.sampled_from(CHANGE_FIELDS),
    value_st, value_st)
call_st = st.builds(
    lambda op, caller, rc, port, out, changes: {
        "caller": caller, "op": op, "args": {"port": 1}, "rc": rc, "port": port, "out": out,
        "changes": changes, "upcalls": [{"dom": caller, "vcpu": 0}]},
    st.sampled_from(["send", "status", "close"]), st.integers(0, 2),
    st.sampled_from([0, -22, None]), st.sampled_from([None, 10]),
    st.sampled_from([None, {"status": "closed", "vcpu": 0}]), st.lists(change_st, max_size=3))
run_st = st.builds(lambda ini, calls, fin: {"format": 1, "initial": ini, "calls": calls,
                                            "final": fin},
                   boot_st, st.lists(call_st, max_size=4), st.one_of(st.none(), booted_st))


def _swapped(ds: list[Difference]) -> Counter[tuple[Any, ...]]:
    return Counter((d.where, d.domain, d.port, d.field, repr(d.got), repr(d.expected))
                   for d in ds)


def _plain(ds: list[Difference]) -> Counter[tuple[Any, ...]]:
    return Counter((d.where, d.domain, d.port, d.field, repr(d.expected), repr(d.got))
                   for d in ds)


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
@given(doc=boot_st, run=run_st)
def test_equal_documents_have_no_difference(profile: Profile, doc: dict[str, Any],
                                            run: dict[str, Any]) -> None:
    assert compare_boot(doc, copy.deepcopy(doc), profile) == []
    assert compare_run(run, copy.deepcopy(run), profile) == []


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
@given(a=boot_st, b=boot_st)
def test_boot_comparison_is_symmetric(profile: Profile, a: dict[str, Any],
                                      b: dict[str, Any]) -> None:
    assert _plain(compare_boot(a, b, profile)) == _swapped(compare_boot(b, a, profile))


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
@given(a=run_st, data=st.data())
def test_run_comparison_is_symmetric(profile: Profile, a: dict[str, Any],
                                     data: st.DataObject) -> None:
    """The other run of the same trace (the same calls by the same callers: the call
    labels are the trace's), with any other outcome."""
    b = data.draw(run_st)
    b["calls"] = [dict(y, op=x["op"], caller=x["caller"]) for x, y in
                  zip(a["calls"], b["calls"], strict=False)]
    assert _plain(compare_run(a, b, profile)) == _swapped(compare_run(b, a, profile))


def _flip(v: Any) -> Any:
    return "closed" if v is None or v == 9 else (not v) if isinstance(v, bool) else \
        v + 1 if isinstance(v, int) else None


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
@given(doc=booted_st, data=st.data())
def test_a_port_field_counts_exactly_when_the_profile_names_it(
        profile: Profile, doc: dict[str, Any], data: st.DataObject) -> None:
    slots = [(d, i) for d, dom in doc["domains"].items() for i in range(len(dom["ports"]))]
    if not slots:
        return
    domid, i = data.draw(st.sampled_from(slots))
    f = data.draw(st.sampled_from(ALL_PORT_FIELDS))
    other = copy.deepcopy(doc)
    port = other["domains"][domid]["ports"][i]
    port[f] = _flip(port[f])
    got = [(d.domain, d.port, d.field) for d in compare_boot(doc, other, profile)]
    assert got == ([(domid, port["port"], f)] if f in profile.port_fields else [])


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
@given(doc=booted_st, panic=panic_st)
def test_document_and_domain_fields_count_exactly_when_the_profile_names_them(
        profile: Profile, doc: dict[str, Any], panic: dict[str, Any]) -> None:
    other = copy.deepcopy(doc)
    for dom in other["domains"].values():
        dom["name"] += "!"
    other["dialect"] = "seed"
    assert [d.field for d in compare_boot(doc, other, profile)] == \
        ["name" for _ in doc["domains"] if "name" in profile.domain_fields]
    for f, v in (("error", "other"), ("panic", "other"), ("node", "/c"), ("rule", "S")):
        got = [d.field for d in compare_boot(panic, dict(panic, **{f: v}), profile)]
        named = f in profile.panic_fields or (f in profile.panic_fields_if_both
                                              and panic["node"] is not None)
        assert got == ([f] if named else []), (f, got)


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
@given(run=run_st, data=st.data())
def test_call_fields_and_changes_count_exactly_when_the_profile_names_them(
        profile: Profile, run: dict[str, Any], data: st.DataObject) -> None:
    if not run["calls"]:
        return
    i = data.draw(st.integers(0, len(run["calls"]) - 1))
    call = run["calls"][i]
    f = data.draw(st.sampled_from(["rc", "port", "out", "errno", "upcalls"]))
    other = copy.deepcopy(run)
    other["calls"][i][f] = "changed"
    named = f in profile.call_fields or (f in profile.status_call_fields
                                         and call["op"] == "status")
    assert [d.field for d in compare_run(run, other, profile)] == ([f] if named else [])
    c = data.draw(change_st)
    other = copy.deepcopy(run)
    other["calls"][i]["changes"].append(dict(c, to="new"))
    named = (c["field"] in profile.port_change_fields and "port" in c) \
        or c["field"] in profile.domain_change_fields
    got = compare_run(run, other, profile)
    assert [(d.field, d.expected) for d in got] == \
        ([(f"change {c['field']}", ABSENT)] if named else [])


def _drop_nulls(doc: Any) -> Any:
    """The same document with every null-valued key left out (lists keep their items)."""
    if isinstance(doc, dict):
        return {k: _drop_nulls(v) for k, v in doc.items() if v is not None}
    if isinstance(doc, list):
        return [_drop_nulls(v) for v in doc]
    return doc


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
@given(doc=boot_st, run=run_st)
def test_a_missing_key_is_a_null_value(profile: Profile, doc: dict[str, Any],
                                       run: dict[str, Any]) -> None:
    """spec/oracle.md §2: leaving out a key that is null changes no comparison."""
    assert compare_boot(doc, _drop_nulls(doc), profile) == []
    assert compare_boot(_drop_nulls(doc), doc, profile) == []
    assert compare_run(run, _drop_nulls(run), profile) == []
