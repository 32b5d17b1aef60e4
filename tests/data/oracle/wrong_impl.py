"""A deliberately wrong implementation, for tests/test_oracle_diff.py.

It answers through the reference (`evtchn_spec.cli`) and then breaks one thing,
chosen by the environment variable WRONG_IMPL_BUG, so `evtchn-spec diff` must find
exactly that difference:

  no-pending-b   every port's pending bit reads false after boot (forgets that the
                 bind side of a static channel is pending)
  failed-rc      run: the first call that failed is reported as succeeded (rc 0)
  crash          exits 3 with a message on stderr
  hang           sleeps far longer than any test's --timeout
  (unset)        no bug: agrees with the oracle
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import time
from typing import Any

from evtchn_spec.cli import main


def _clear_pending(doc: dict[str, Any]) -> None:
    for dom in (doc.get("domains") or {}).values():
        for port in dom["ports"]:
            port["pending"] = False


def run() -> int:
    bug = os.environ.get("WRONG_IMPL_BUG", "")
    if bug == "crash":
        print("wrong_impl: simulated crash", file=sys.stderr)
        return 3
    if bug == "hang":
        time.sleep(600)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(sys.argv[1:])
    doc = json.loads(out.getvalue())
    if bug == "no-pending-b":
        _clear_pending(doc.get("initial", doc))
    if bug == "failed-rc":
        failed = [c for c in doc.get("calls", []) if (c.get("rc") or 0) < 0]
        if failed:
            failed[0]["rc"] = 0
    sys.stdout.write(json.dumps(doc))
    return rc


if __name__ == "__main__":
    sys.exit(run())
