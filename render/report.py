"""Rendering of `check` findings: compiler-style text, json, SARIF 2.1.0 and GitHub
workflow commands (annotations)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import IO, Any

from evtchn_spec import __version__
from evtchn_spec.refimpl import rules as R
from evtchn_spec.refimpl.check import CheckResult, Finding
from evtchn_spec.refimpl.config import Loc

_COLOURS = {"error": "\033[1;31m", "warning": "\033[1;35m", "note": "\033[1;36m",
            "bold": "\033[1m", "reset": "\033[0m"}


def use_colour(stream: IO[str]) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set (no-color.org)."""
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _summary(result: CheckResult) -> dict[str, Any]:
    cfg = result.config
    return {
        "domains": len(result.boot.domains),
        "endpoints": len(cfg.endpoints),
        "channels": len(result.boot.channels),
        "errors": result.errors,
        "warnings": result.warnings,
    }


def to_text(result: CheckResult, colour: bool = False) -> str:
    return "".join(text_lines(result, colour))


def text_lines(result: CheckResult, colour: bool = False) -> Iterator[str]:
    """The text report line by line, each with its newline: written as they are made,
    a report of 100,000 findings is never held whole."""
    def c(kind: str, text: str) -> str:
        return f"{_COLOURS[kind]}{text}{_COLOURS['reset']}" if colour else text

    mixed = result.config.dialects_used == "mixed"
    for f in result.findings:
        first = f.locations[0] if f.locations else None
        head = f"{first}: " if first is not None else ""
        tag = f" ({f.dialect} dialect)" if mixed and f.dialect else ""
        yield (f"{c('bold', head)}{c(f.severity, f.severity)}"
               f"{c('bold', f'[{f.rule}]')}: {f.message}{tag}\n")
        for lc in f.locations:
            yield f"  {lc}: {c('note', 'note')}: {lc.node}\n"
        if f.hint:
            yield f"  = fix: {f.hint}\n"
    cfg = result.config
    s = _summary(result)
    if not cfg.endpoints:
        yield "no event channels declared in this device tree (nothing to bind)\n"
    yield (f"dialect: {cfg.dialects_used} (--dialect {cfg.dialect_mode}); "
           f"Xen {cfg.profile.name}; {s['domains']} domains, {s['endpoints']} "
           f"endpoint nodes, {s['channels']} channels made at boot\n")
    yield f"{s['errors']} error(s), {s['warnings']} warning(s)\n"


def end_of(lc: Loc) -> tuple[int, int]:
    """Where a location ends: the line and the column after its last character; a
    source that gives no end (a DTB, whose column is a byte offset) ends where it
    starts."""
    if lc.end_line <= 0 or (lc.end_line, lc.end_column) < (lc.line, lc.column):
        return lc.line, lc.column
    return lc.end_line, max(lc.end_column, 1)


def _location_json(lc: Loc) -> dict[str, Any]:
    end_line, end_column = end_of(lc)
    return {"file": lc.file, "line": lc.line, "column": lc.column, "end_line": end_line,
            "end_column": end_column, "node": lc.node}


def _finding_json(f: Finding) -> dict[str, Any]:
    d: dict[str, Any] = {
        "rule": f.rule, "severity": f.severity, "message": f.message,
        "locations": [_location_json(lc) for lc in f.locations],
        "hint": f.hint,
    }
    if f.dialect is not None:
        d["dialect"] = f.dialect
    return d


def to_json(result: CheckResult) -> str:
    doc = {"format": 1, "verdict": result.verdict(),
           "findings": [_finding_json(f) for f in result.findings],
           "dialect": result.config.dialects_used, "xen": result.config.profile.name,
           "summary": _summary(result)}
    if not result.config.endpoints:
        doc["note"] = "no event channels declared"
    return json.dumps(doc, indent=2) + "\n"


def to_sarif(result: CheckResult) -> str:
    used = sorted({f.rule for f in result.findings})
    rules = [{"id": rid, "shortDescription": {"text": R.rule(rid).title},
              "defaultConfiguration": {"level": R.rule(rid).severity},
              "helpUri": "spec/" + R.rule(rid).anchor} for rid in used]
    index = {rid: i for i, rid in enumerate(used)}
    results = []
    for f in result.findings:
        locs = []
        for lc in f.locations:
            end_line, end_column = end_of(lc)
            locs.append({
                "physicalLocation": {
                    "artifactLocation": {"uri": lc.file},
                    "region": {"startLine": max(lc.line, 1), "startColumn": max(lc.column, 1),
                               "endLine": max(end_line, 1), "endColumn": max(end_column, 1)},
                },
                "logicalLocations": [{"fullyQualifiedName": lc.node, "kind": "object"}],
            })
        results.append({"ruleId": f.rule, "ruleIndex": index[f.rule], "level": f.severity,
                        "message": {"text": f"{f.message} Fix: {f.hint}" if f.hint
                                    else f.message},
                        "locations": locs})
    doc = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "evtchn-spec", "version": __version__,
                                "informationUri": "https://xenbits.xen.org/docs/",
                                "rules": rules}},
            "results": results,
        }],
    }
    return json.dumps(doc, indent=2) + "\n"


def github_data(text: str) -> str:
    """A workflow command's message, escaped as GitHub's toolkit does (escapeData)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def github_property(text: str) -> str:
    """A workflow command's property value (escapeProperty): `:` and `,` too."""
    return github_data(text).replace(":", "%3A").replace(",", "%2C")


def to_github(result: CheckResult) -> str:
    """One `::error` / `::warning` workflow command per finding, at its first location
    (GitHub shows it on that line of the pull request); the message carries the fix
    hint and the other locations on lines of their own. Ends are exclusive columns,
    as in the JSON; GitHub uses `col`/`endColumn` only within one line."""
    lines: list[str] = []
    for f in result.findings:
        props: list[str] = []
        first = f.locations[0] if f.locations else None
        if first is not None:
            end_line, end_column = end_of(first)
            props += [f"file={github_property(first.file)}", f"line={max(first.line, 1)}",
                      f"col={max(first.column, 1)}", f"endLine={max(end_line, 1)}",
                      f"endColumn={max(end_column, 1)}"]
        props.append(f"title={github_property(f.rule)}")
        text = [f.message]
        if f.hint:
            text.append(f"fix: {f.hint}")
        text += [f"also: {lc}: {lc.node}" for lc in f.locations[1:]]
        command = "error" if f.severity == "error" else "warning"
        lines.append(f"::{command} {','.join(props)}::{github_data(chr(10).join(text))}")
    return "".join(line + "\n" for line in lines)
