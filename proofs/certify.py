"""Discharge the obligations with Z3 and turn its answers into verdicts.

A rule's obligations go to Z3 as SMT-LIB scripts of about BATCH_CHARS (push /
query / check-sat / pop per scope), evaluated inside Z3 (`Z3_eval_smtlib2_string`),
so the text that was checked is exactly the certificate another solver re-checks;
the batches run on a few threads (Z3 runs outside Python's lock). A `sat` query is
run again alone to read the model (the counterexample) and, with named facts, the
minimal unsat core of "facts and not its witness" (the DTS places that force it).
`unknown` (timeout) is never a proof.
"""

from __future__ import annotations

import math
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import z3

from .encode import CLAIMS, LOGIC, Candidate, Obligation, cone
from .facts import Cite


@dataclass(slots=True)
class Counterexample:
    message: str
    cites: list[Cite]
    values: dict[str, int] = field(default_factory=dict)
    # the term of the query the model makes true (what `core` explains); not reported
    witness: str = ""

    def as_json(self) -> dict[str, Any]:
        return {"message": self.message, "locations": [c.as_json() for c in self.cites],
                "values": self.values}


@dataclass(slots=True)
class Verdict:
    ob: Obligation
    answer: str  # "unsat" (proved) | "sat" (counterexample) | "unknown"
    counterexample: Counterexample | None = None
    core: list[Cite] | None = None


@dataclass(slots=True)
class RuleReport:
    rule: str
    claim: str
    verdicts: list[Verdict]
    seconds: float

    @property
    def status(self) -> str:
        answers = {v.answer for v in self.verdicts}
        if "sat" in answers:
            return "counterexample"
        if "unknown" in answers:
            return "unknown"
        return "proved"


def _script(obs: list[Obligation], timeout_ms: int) -> str:
    head = [f"(set-option :timeout {timeout_ms})"] if timeout_ms > 0 else []
    head.append(f"(set-logic {LOGIC})")
    parts = ["\n".join(head) + "\n"]
    for ob in obs:
        parts.append("(push 1)\n")
        parts.append(ob.text())
        parts.append("(check-sat)\n(pop 1)\n")
    return "".join(parts)


# Queries go to Z3 in scripts of about this many characters: a fresh context per
# script keeps Z3's own memory bounded by the batch, not by the rule (each query is
# push/pop isolated, so the batching does not change any answer).
BATCH_CHARS = 1 << 20


def _batches(group: Iterable[Obligation]) -> Iterator[list[Obligation]]:
    """A rule's obligations in scripts of about BATCH_CHARS characters, in order, taken
    from `group` only as each batch is asked for."""
    batch: list[Obligation] = []
    size = 0
    for ob in group:
        batch.append(ob)
        size += ob.text_size()
        if size >= BATCH_CHARS:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _batch_answers(batch: list[Obligation], timeout_ms: int) -> list[str]:
    try:
        return eval_script(_script(batch, timeout_ms))
    except SolverGaveUp:
        return ["unknown"] * len(batch)  # never proved, never an internal error


def timeout_ms(seconds: float | None) -> int:
    """Z3's timeout for a limit in seconds: 0 (none) for none, else whole milliseconds
    from 1 to 2**32-1 (Z3 takes an unsigned 32-bit count; 0 would mean no limit)."""
    if seconds is None or not seconds > 0:  # also NaN: no usable limit
        return 0
    if seconds >= (2**32 - 1) / 1000:
        return 2**32 - 1
    return max(1, math.ceil(seconds * 1000))


# Z3's cores minimised. Set once, here: an smt.* option set inside a script is a
# global of Z3 too, and scripts run on several threads (run_groups).
z3.set_param("smt.core.minimize", True)


class SolverGaveUp(Exception):
    """Z3 stopped for want of a resource (memory, a limit, a cancel): an unknown."""


_RESOURCE_WORDS = ("out of memory", "max. memory", "memory exceeded", "canceled", "cancelled",
                   "resource limit", "rlimit")


def eval_script(script: str) -> list[str]:
    """Run an SMT-LIB script inside Z3; the answers of its check-sat commands."""
    ctx = z3.Context()
    try:
        out = z3.Z3_eval_smtlib2_string(ctx.ref(), script)
    except z3.Z3Exception as exc:
        if any(w in str(exc).lower() for w in _RESOURCE_WORDS):
            raise SolverGaveUp(str(exc)) from None
        # a malformed query is our bug, not the user's
        raise RuntimeError(f"internal: Z3 rejected a generated query: {exc}") from None
    return [ln.strip() for ln in out.splitlines() if ln.strip()]


def explain_sat(ob: Obligation, timeout_ms: int, ctx: z3.Context | None = None
                ) -> Counterexample:
    """Read the model of a violated obligation: which candidate breaks the rule.

    Through the Python API's model rather than SMT-LIB get-value, which crashed
    Z3 5.4.1 on some of these queries after push/check-sat (seen in testing). `ctx`:
    a context to reuse (a solver of its own is made in it either way)."""
    ctx = ctx or z3.Context()
    solver = z3.Solver(ctx=ctx)
    if timeout_ms:
        solver.set("timeout", timeout_ms)
    solver.from_string(f"(set-logic {LOGIC})\n" + ob.text())
    if solver.check() != z3.sat:
        return Counterexample(f"{ob.rule} is violated in {ob.scope}", [])
    m = solver.model()

    def val_bool(name: str) -> bool:
        return bool(z3.is_true(m.eval(z3.Bool(name, ctx), model_completion=True)))

    def val_int(name: str) -> int:
        v = m.eval(z3.Int(name, ctx), model_completion=True)
        return int(v.as_long()) if z3.is_int_value(v) else -1

    c0 = z3.Function("c0", z3.IntSort(ctx), z3.IntSort(ctx))

    def val_port(node: int) -> int:
        v = m.eval(c0(z3.IntVal(node, ctx)), model_completion=True)
        return int(v.as_long()) if z3.is_int_value(v) else -1

    for c in ob.candidates:
        if val_bool(c.var):
            return Counterexample(c.message, list(c.cites),
                                  witness=_asked(ob, c.var, val_int, val_port))
    seen: dict[int, tuple[str, Candidate]] = {}
    for k, _, cand in ob.pairs:
        v = val_int(k)
        if v < 0:
            continue
        if v in seen:
            first_k, first = seen[v]
            dyn = {ob.aux[q]: val_int(q) for q in ob.aux}
            msg = f"{first.message} and {cand.message} both hold port {v} in {ob.scope}"
            return Counterexample(msg, [*first.cites, *cand.cites], {"port": v, **dyn},
                                  witness=f"(= {first_k} {k})")
        seen[v] = (k, cand)
    return Counterexample(f"{ob.rule} is violated in {ob.scope}", [])


def _asked(ob: Obligation, var: str, val_int: Callable[[str], int],
           val_port: Callable[[int], int]) -> str:
    """The witness of candidate `var`: itself, or for "a failing channel asks for a
    held port", that it fails after asking and that the key of the earlier end the
    model says holds the port equals it (a term without the domain's port sets, so
    its cone is the two channels)."""
    if var not in ob.asks:
        return var
    fails, node, upto = ob.asks[var]
    want = val_port(node)
    for k, _, _ in ob.pairs[:upto]:
        if want >= 0 and val_int(k) == want:
            return f"(and {fails} (= {k} (c0 {node})))"
    return var


def core(ob: Obligation, negate: bool, timeout_ms: int, ctx: z3.Context | None = None,
         witness: str = "") -> list[Cite]:
    """The DTS places of core_facts, each once, in the facts' order."""
    names = core_facts(ob, negate, timeout_ms, ctx, witness)
    if names is None:
        return []
    places: list[Cite] = []
    seen: set[tuple[str, int, int]] = set()
    for name, cite in zip(ob.facts.names, ob.facts.cites, strict=True):
        if name in names and cite is not None:
            key = (cite.file, cite.line, cite.column)
            if key not in seen:
                seen.add(key)
                places.append(cite)
    return places


def core_facts(ob: Obligation, negate: bool, timeout_ms: int,
               ctx: z3.Context | None = None, witness: str = "") -> set[str] | None:
    """The fact names of a minimal unsat core: of facts + violation (a proof: what it
    needs) or of facts + not violation (a conflict: what forces it). With `witness`
    (a counterexample's term), of facts + not witness: what forces that counterexample,
    found over the witness's cone (encode.cone: a core there is a core of the whole
    query), else over the whole query. None if there is no core (not unsat). `ctx`: a
    context to reuse; each script starts with (reset), so nothing of an earlier one
    remains."""
    ctx = ctx or z3.Context()
    names: set[str] | None = None
    if negate and witness:
        facts, defs = cone(ob, witness)
        names = _minimal_core(ctx, timeout_ms, ob.decls, facts,
                              [*defs, f"(assert (not {witness}))"])
        if names is None:
            names = _minimal_core(ctx, timeout_ms, ob.decls, ob.facts.items(),
                                  [*ob.defs, f"(assert (not {witness}))"])
    if names is None:
        last = f"(assert (not {ob.violation}))" if negate else f"(assert {ob.violation})"
        names = _minimal_core(ctx, timeout_ms, ob.decls, ob.facts.items(), [*ob.defs, last])
    return names


def _minimal_core(ctx: z3.Context, timeout_ms: int, decls: list[str],
                  facts: list[tuple[str, str, Cite | None]], query: list[str]
                  ) -> set[str] | None:
    """The names of a minimal set of `facts` that, with `decls` and `query`, is unsat;
    None unless all of them are. Z3's core (smt.core.minimize) comes first; then every
    fact of it is dropped in turn, and one that can go goes (Z3's minimisation leaves
    some in queries over arrays). An unknown keeps its fact: the set still forces the query,
    it may then not be minimal."""
    timeout = f"(set-option :timeout {timeout_ms})\n" if timeout_ms > 0 else ""
    declared = "\n".join(decls)
    body = "\n".join(query)
    # smt.core.minimize is set for the process below (a global of Z3)
    head = f"(reset)\n{timeout}(set-option :produce-unsat-cores true)\n(set-logic {LOGIC})\n"
    named = "\n".join(f"(assert (! {a} :named {n}))" for n, a, _ in facts)
    out = z3.Z3_eval_smtlib2_string(ctx.ref(), f"{head}{declared}\n{named}\n{body}\n"
                                    "(check-sat)\n(get-unsat-core)\n")
    answer = out.lstrip("\n").split("\n", 1)
    if answer[0].strip() != "unsat" or len(answer) < 2:
        return None
    names = set(answer[1].replace("(", " ").replace(")", " ").split())
    keep = [(n, a) for n, a, _ in facts if n in names]
    head = f"(reset)\n{timeout}(set-logic {LOGIC})\n{declared}\n{body}\n"
    while keep:
        # one script: each fact left out in turn
        script = [head]
        for i in range(len(keep)):
            script.append("(push 1)\n" + "".join(f"(assert {a})\n" for j, (_, a) in
                                                  enumerate(keep) if j != i)
                          + "(check-sat)\n(pop 1)\n")
        answers = z3.Z3_eval_smtlib2_string(ctx.ref(), "".join(script)).split()
        if "unsat" not in answers:
            break
        del keep[answers.index("unsat")]
    return {n for n, _ in keep}


class _Contexts:
    """Z3 contexts for a rule's counterexamples, or for its cores, each one used for
    up to REUSE queries: a broken tree has hundreds of counterexamples, and making a
    context costs about 3 ms (a tenth of a minimised core), while one context kept
    for ever grows Z3's own tables. Dropped when the rule is done, before the next
    rule's queries run."""

    REUSE = 32

    def __init__(self) -> None:
        self._ctx: z3.Context | None = None
        self._uses = 0

    def next(self) -> z3.Context:
        if self._ctx is None or self._uses >= self.REUSE:
            self._ctx = z3.Context()
            self._uses = 0
        self._uses += 1
        return self._ctx


def run(obs: list[Obligation], timeout_s: float = 0.0, explain: bool = False,
        cores: bool = True) -> list[RuleReport]:
    """Discharge every obligation, rule by rule."""
    by_rule: dict[str, list[Obligation]] = {}
    for ob in obs:
        by_rule.setdefault(ob.rule, []).append(ob)
    return run_groups(by_rule.items(), timeout_s, explain, cores)


def _decide(batch: list[Obligation], ms: int, explain: bool, cores: bool) -> list[Verdict]:
    """One batch's verdicts: its answers, then each counterexample's model and core.
    Everything it asks Z3 stays in contexts of its own, so a batch's verdicts do not
    depend on which batches ran before it, or beside it."""
    answers = _batch_answers(batch, ms)
    if len(answers) != len(batch):
        raise RuntimeError(f"internal: {len(answers)} answers for {len(batch)} queries")
    verdicts = []
    models, cores_at = _Contexts(), _Contexts()
    for ob, ans in zip(batch, answers, strict=True):
        ans = ans if ans in ("sat", "unsat") and not ob.unsupported else "unknown"
        v = Verdict(ob, ans)
        if ans == "sat":
            v.counterexample = explain_sat(ob, ms, models.next())
            if cores:
                v.core = core(ob, True, ms, cores_at.next(), v.counterexample.witness)
        elif ans == "unsat" and explain:
            v.core = core(ob, False, ms, cores_at.next())
        verdicts.append(v)
    return verdicts


def workers() -> int:
    """How many batches are decided at once: one per CPU this process may run on (up
    to 8). Z3 runs outside Python's lock, and each batch has its own contexts."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on every platform
        n = os.cpu_count() or 1
    return max(1, min(WORKERS_MAX, n))


WORKERS_MAX = 8


def run_groups(groups: Iterable[tuple[str, Iterable[Obligation]]], timeout_s: float = 0.0,
               explain: bool = False, cores: bool = True,
               done: Callable[[RuleReport], None] | None = None,
               release: bool = False,
               decided: Callable[[list[Verdict]], None] | None = None) -> list[RuleReport]:
    """Discharge each rule's obligations as `groups` yields them, its batches on
    `workers()` threads (the verdicts are the same, in the same order, for any
    number); a batch is taken from its group only when a thread is about to be free,
    so a group built lazily is held a few batches at a time. `decided` sees each
    batch's verdicts, in order, while their queries are still there (to stream the
    certificate); `done` sees each rule's report once it is decided; with `release`
    a batch's queries are dropped once `decided` has seen them."""
    ms = timeout_ms(timeout_s)
    reports = []
    n = workers()
    with ThreadPoolExecutor(n) as pool:
        for rule, group in groups:
            t0 = time.perf_counter()
            verdicts: list[Verdict] = []
            pending: deque[Future[list[Verdict]]] = deque()
            for batch in _batches(group):
                pending.append(pool.submit(_decide, batch, ms, explain, cores))
                if len(pending) > n:  # one waiting per thread, no more
                    verdicts += _collect(pending.popleft(), decided, release)
            while pending:
                verdicts += _collect(pending.popleft(), decided, release)
            report = RuleReport(rule, CLAIMS.get(rule, rule), verdicts,
                                time.perf_counter() - t0)
            reports.append(report)
            if done is not None:
                done(report)
    return reports


def _collect(fut: Future[list[Verdict]], decided: Callable[[list[Verdict]], None] | None,
             release: bool) -> list[Verdict]:
    vs = fut.result()
    if decided is not None:
        decided(vs)
    if release:
        for v in vs:
            v.ob.release()
    return vs


CERT_HEADER = (
    "; evtchn-spec proof certificate (format 1)\n"
    "; source: {source}\n"
    "; Each block is one obligation: the facts of one scope, and a violation of\n"
    "; one rule of spec/binding.md. 'unsat' proves the rule for the scope.\n"
    "; A checker runs this file and compares its check-sat answers, in order,\n"
    "; with the ';! expect' lines.\n"
    f"(set-logic {LOGIC})\n")
CERT_END = "(exit)\n"


def _cert_block(n: int, ob: Obligation, answer: str) -> str:
    why = f"; not modelled: {ob.unsupported}\n" if ob.unsupported else ""
    return (f"; obligation {n}: {ob.rule} in {ob.scope}\n{why};! expect {answer}\n(push 1)\n"
            + ob.text(False) + "(check-sat)\n(pop 1)\n")


class CertificateWriter:
    """The certificate written as the rules are decided (same text as `certificate`)."""

    def __init__(self, fh: BinaryIO, source: str) -> None:
        self.fh = fh
        self.n = 0
        fh.write(CERT_HEADER.format(source=source).encode())

    def batch(self, verdicts: list[Verdict]) -> None:
        for v in verdicts:
            self.fh.write(_cert_block(self.n, v.ob, v.answer).encode())
            self.n += 1

    def close(self) -> None:
        self.fh.write(CERT_END.encode())


def certificate(obs: list[Obligation], reports: list[RuleReport], source: str) -> str:
    """A self-contained SMT-LIB 2 script: every query, with the answer Z3 gave as a
    comment and an echo, so another solver's output can be compared line by line."""
    answer = {id(v.ob): v.answer for r in reports for v in r.verdicts}
    parts = [CERT_HEADER.format(source=source)]
    for n, ob in enumerate(obs):
        parts.append(_cert_block(n, ob, answer.get(id(ob), "unknown")))
    parts.append(CERT_END)
    return "".join(parts)
