"""Every corpus entry, against the installed dtc run live (no stored expectations).

For each of the 80 entries of tests/data/corpus/MANIFEST.tsv, built as its README
says (cpp flags, include dirs, `-@` for overlays, `.dtb` entries read as blobs):

* `write_dtb(load(entry))` is byte for byte what dtc writes;
* `to_json(load(entry))` equals the JSON of dtc's DTB as our reader decodes it;
* `to_dts(load(entry))` compiled by dtc gives that DTB again;
* dtc's DTB read by `read_dtb` and written by `write_dtb` equals `dtc -I dtb -O dtb`.

Each tree is loaded once and shared by the checks (module-level caches).
"""

from __future__ import annotations

import csv
import functools
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from evtchn_spec.grammar import load
from evtchn_spec.grammar.dtb import read_dtb, write_dtb
from evtchn_spec.grammar.dump import dtc_guessed_boot_cpuid, to_dts, to_json
from evtchn_spec.grammar.tree import Tree

CORPUS = Path(__file__).parent / "data" / "corpus"
DTC = shutil.which("dtc")
CPP = shutil.which("cpp")
assert DTC is not None and CPP is not None, "dtc and cpp must be installed: run ./install.sh"
CPP_FLAGS = ["-nostdinc", "-undef", "-x", "assembler-with-cpp", "-D__DTS__"]


@dataclass(frozen=True)
class Entry:
    file: str
    needs_cpp: bool
    include_dirs: tuple[str, ...]

    @property
    def path(self) -> Path:
        return CORPUS / self.file

    @property
    def overlay(self) -> bool:
        return self.file.endswith(".dtso")

    @property
    def is_dtb(self) -> bool:
        return self.file.endswith(".dtb")


def _entries() -> list[Entry]:
    with (CORPUS / "MANIFEST.tsv").open(newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [Entry(r["file"], r["needs_cpp"] == "yes",
                  tuple(d for d in r["include_dirs"].split(";") if d)) for r in rows]


ENTRIES = _entries()
DTS_ENTRIES = [e for e in ENTRIES if not e.is_dtb]


def test_the_whole_corpus_is_here() -> None:
    assert len(ENTRIES) == 80 and len(DTS_ENTRIES) == 77
    assert all(e.path.is_file() for e in ENTRIES)


def _run(cmd: list[str], data: bytes | None = None) -> bytes:
    res = subprocess.run(cmd, input=data, capture_output=True, cwd=CORPUS, check=False)
    assert res.returncode == 0, f"{cmd[0]} failed: {res.stderr.decode(errors='replace')}"
    return res.stdout


@functools.cache
def dtc_blob(entry: Entry) -> bytes:
    """What dtc 1.6.1 builds from the entry, by the corpus README's commands."""
    assert DTC is not None and CPP is not None
    if entry.is_dtb:
        return _run([DTC, "-q", "-I", "dtb", "-O", "dtb", entry.file])
    flags = ["-@"] if entry.overlay else []
    dtc_inc = [a for d in entry.include_dirs for a in ("-i", d)]
    if entry.needs_cpp:
        pre = _run([CPP, *CPP_FLAGS, *[a for d in entry.include_dirs for a in ("-I", d)],
                    entry.file])
        return _run([DTC, "-q", "-I", "dts", "-O", "dtb", *flags, *dtc_inc, "-"], pre)
    return _run([DTC, "-q", "-I", "dts", "-O", "dtb", *flags, *dtc_inc, entry.file])


@functools.cache
def our_tree(entry: Entry) -> Tree:
    return load(entry.path, cpp=entry.needs_cpp,
                include_dirs=[CORPUS / d for d in entry.include_dirs], symbols=entry.overlay)


def _id(e: Entry) -> str:
    return e.file


@pytest.mark.parametrize("entry", ENTRIES, ids=_id)
def test_dtb_output_is_dtcs(entry: Entry) -> None:
    assert write_dtb(our_tree(entry)) == dtc_blob(entry)


@pytest.mark.parametrize("entry", ENTRIES, ids=_id)
def test_json_equals_dtcs_blob_decoded(entry: Entry) -> None:
    assert to_json(our_tree(entry)) == to_json(read_dtb(dtc_blob(entry), "dtc.dtb"))


@pytest.mark.parametrize("entry", ENTRIES, ids=_id)
def test_dts_output_recompiles_to_dtcs_blob(entry: Entry) -> None:
    assert DTC is not None
    tree = our_tree(entry)
    args = [DTC, "-q", "-I", "dts", "-O", "dtb"]
    if tree.boot_cpuid_phys != dtc_guessed_boot_cpuid(tree):
        args += ["-b", str(tree.boot_cpuid_phys)]
    assert _run([*args, "-"], to_dts(tree).encode()) == dtc_blob(entry)


@pytest.mark.parametrize("entry", ENTRIES, ids=_id)
def test_dtcs_blob_round_trips_through_our_reader_and_writer(entry: Entry) -> None:
    assert DTC is not None
    blob = dtc_blob(entry)
    assert write_dtb(read_dtb(blob, "dtc.dtb")) == _run(
        [DTC, "-q", "-I", "dtb", "-O", "dtb", "-"], blob)


@pytest.mark.parametrize("entry", [e for e in ENTRIES if e.is_dtb], ids=_id)
def test_qemu_padded_blob_is_compacted_as_dtc_does(entry: Entry) -> None:
    """QEMU's blobs carry 1 MiB of padding; dtc (and we) write the compact form."""
    raw = entry.path.read_bytes()
    tree = read_dtb(raw, entry.file)
    assert len(raw) == 1 << 20
    assert write_dtb(tree) == dtc_blob(entry) and len(dtc_blob(entry)) < len(raw)
