"""render/json_stream.py writes what json.dumps(doc, indent=2) writes, for every
document, with its streamed member given entry by entry."""

from __future__ import annotations

import io
import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from evtchn_spec.render.json_stream import write_json

scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**6),
                    st.text(max_size=6), st.floats(allow_nan=False))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)),
    max_leaves=12)
docs = st.dictionaries(st.text(max_size=5), values, max_size=4)


@given(doc=docs, streamed=st.dictionaries(st.text(max_size=4), values, max_size=4),
       where=st.integers(0, 4))
def test_streamed_is_json_dumps(doc: dict[str, Any], streamed: dict[str, Any],
                                where: int) -> None:
    items = list(doc.items())
    key = "streamed\n\""  # (a key that needs escaping)
    items = [(k, v) for k, v in items if k != key]
    items.insert(min(where, len(items)), (key, streamed))
    whole = dict(items)
    out = io.StringIO()
    write_json(out, {k: (None if k == key else v) for k, v in whole.items()}, key,
               iter(streamed.items()))
    assert out.getvalue() == json.dumps(whole, indent=2) + "\n"


@given(doc=docs)
def test_without_a_streamed_member_it_is_json_dumps(doc: dict[str, Any]) -> None:
    out = io.StringIO()
    write_json(out, doc)
    assert out.getvalue() == json.dumps(doc, indent=2) + "\n"
