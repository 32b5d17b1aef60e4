"""The repository stands on its own: a user who clones it has every file it cites.

No tracked file names an absolute path of a machine or a document outside the
repository, every relative link of the Markdown pages resolves, and the set-up the
README promises is the one .ci/run performs.
"""

from __future__ import annotations

import functools
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Real device trees copied verbatim from their projects keep their own text.
VERBATIM = ("tests/data/corpus/",)
# Paths of a particular machine, and the places outside the repository that earlier
# drafts cited. .ci/run alone may name the folder CI lays beside the clone.
OUTSIDE = re.compile(r"/work/|/root/|/home/\w|\.\./shared\b|xen-facts\.md|/tmp/evtchn")
OUTSIDE_ALLOWED = {".ci/run": re.compile(r"\.\./shared\b")}
WORK_TALK = re.compile(r"\b(?:[Ii]ssue|[Ss]ession|[Hh]elper)[- ]#?\d+\b")
LINK = re.compile(r"\]\(([^)\s#]+)(?:#[^)]*)?\)")


def _tracked() -> list[str]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                             check=False)
    except FileNotFoundError:
        pytest.skip("git is not installed (the hygiene rules are about the repository)")
    if out.returncode != 0:
        pytest.skip("not a git checkout (the hygiene rules are about the repository)")
    return [p for p in out.stdout.decode().split("\0") if p]


@functools.cache
def _texts() -> list[tuple[str, str]]:
    texts = []
    for rel in _tracked():
        if rel.startswith(VERBATIM) or rel == "tests/test_repo_hygiene.py":
            continue
        path = ROOT / rel
        if not path.is_file():
            continue
        raw = path.read_bytes()
        if b"\0" in raw[:4096]:
            continue
        texts.append((rel, raw.decode("utf-8", errors="replace")))
    return texts


def test_no_file_points_outside_the_repository() -> None:
    bad = []
    for rel, text in _texts():
        for no, line in enumerate(text.splitlines(), 1):
            for m in OUTSIDE.finditer(line):
                allowed = OUTSIDE_ALLOWED.get(rel)
                if allowed and allowed.fullmatch(m.group(0)):
                    continue
                bad.append(f"{rel}:{no}: {line.strip()}")
    assert not bad, "\n".join(bad)


def test_no_file_speaks_of_the_work_log() -> None:
    bad = [f"{rel}:{no}: {line.strip()}"
           for rel, text in _texts()
           for no, line in enumerate(text.splitlines(), 1) if WORK_TALK.search(line)]
    assert not bad, "\n".join(bad)


def test_every_relative_markdown_link_resolves() -> None:
    bad = []
    for rel, text in _texts():
        if not rel.endswith(".md"):
            continue
        for no, line in enumerate(text.splitlines(), 1):
            for target in LINK.findall(line):
                if re.match(r"[a-z]+:", target):
                    continue
                if not (ROOT / rel).parent.joinpath(target).exists():
                    bad.append(f"{rel}:{no}: {target}")
    assert not bad, "\n".join(bad)


def test_architecture_page_is_in_the_repository() -> None:
    names = {p for _rel, text in _texts() for p in re.findall(r"\b[A-Z]+\.md\b", text)}
    for name in names:
        if name in {"ARCHITECTURE.md", "README.md"}:
            assert (ROOT / name).is_file(), f"{name} is cited but not in the repository"


def _readme_sh_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```(?:sh|bash|console)\n(.*?)```", text, re.S)


def test_ci_runs_exactly_the_readme_test_command() -> None:
    blocks = _readme_sh_blocks()
    assert len(blocks) >= 2
    test_cmd = [ln.strip() for ln in blocks[1].splitlines()
                if ln.strip() and not ln.strip().startswith("#")]
    assert len(test_cmd) == 1
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert ci[-1].strip() == test_cmd[0]
    assert any(ln.strip() == "bash install.sh" for ln in ci)
    setup = blocks[0]
    assert "./install.sh" in setup and ".venv/bin/evtchn-spec" in setup
