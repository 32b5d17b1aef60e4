"""`table --guest-header DIR --lang c|rust|json|zephyr`: per-guest port manifests.

The C headers are compiled (gcc -Wall -Werror) and a program built on them prints
every constant, compared with `table --format json`; the Rust files likewise with
rustc when it is on PATH; the Zephyr overlays are compiled by dtc and read back; the
names are checked for every random tree (hypothesis) to be unique per file, valid C
and Rust identifiers, and to carry the table's ports.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_boot_model import System

from evtchn_spec.cli import main
from evtchn_spec.grammar import load
from evtchn_spec.refimpl.boot import boot
from evtchn_spec.render import headers
from evtchn_spec.render import table as tbl

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "dom0less-three-domus.dts"
XENSTORE = ROOT / "tests" / "data" / "rules" / "EVT-PORT-XENSTORE.passes.dts"

C_WORDS = """auto break case char const continue default do double else enum extern
float for goto if inline int long register restrict return short signed sizeof static
struct switch typedef union unsigned void volatile while _Alignas _Alignof _Atomic _Bool
_Complex _Generic _Imaginary _Noreturn _Static_assert _Thread_local alignas alignof bool
constexpr false nullptr static_assert thread_local true typeof typeof_unqual"""
RUST_WORDS = """as break const continue crate else enum extern false fn for if impl in
let loop match mod move mut pub ref return self Self static struct super trait true type
unsafe use where while async await dyn abstract become box do final macro override priv
typeof unsized virtual yield try gen union"""
C_KEYWORDS, RUST_KEYWORDS = set(C_WORDS.split()), set(RUST_WORDS.split())
IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# two ports whose names map to one identifier (a label and a node name), a static
# port labelled "xenstore" next to the real xenstore port, and a label that looks
# like a disambiguated name
COLLIDING = """/dts-v1/;
/ {
	chosen {
		#address-cells = <1>;
		#size-cells = <1>;
		module@4c000000 {
			compatible = "multiboot,kernel", "multiboot,module";
			reg = <0x4c000000 0x200000>;
		};
		domU1 {
			compatible = "xen,domain";
			#address-cells = <1>;
			#size-cells = <1>;
			memory = <0 0x10000>;
			cpus = <1>;
			xen,enhanced = "enabled";
			module@4c200000 {
				compatible = "multiboot,kernel", "multiboot,module";
				reg = <0x4c200000 0x200000>;
			};
			a_b: evtchn@2 {
				compatible = "xen,evtchn-v1";
				xen,evtchn = <2 &p2>;
			};
			a-b {
				compatible = "xen,evtchn-v1";
				xen,evtchn = <3 &p3>;
			};
			xenstore: evtchn@4 {
				compatible = "xen,evtchn-v1";
				xen,evtchn = <4 &p4>;
			};
			a_b_p3: evtchn@5 {
				compatible = "xen,evtchn-v1";
				xen,evtchn = <5 &p5>;
			};
		};
		domU2 {
			compatible = "xen,domain";
			#address-cells = <1>;
			#size-cells = <1>;
			memory = <0 0x10000>;
			cpus = <1>;
			module@4c400000 {
				compatible = "multiboot,kernel", "multiboot,module";
				reg = <0x4c400000 0x200000>;
			};
			p2: evtchn@2 { compatible = "xen,evtchn-v1"; xen,evtchn = <12 &a_b>; };
			p3: evtchn@3 { compatible = "xen,evtchn-v1"; xen,evtchn = <13 &{/chosen/domU1/a-b}>; };
			p4: evtchn@4 { compatible = "xen,evtchn-v1"; xen,evtchn = <14 &xenstore>; };
			p5: evtchn@5 { compatible = "xen,evtchn-v1"; xen,evtchn = <15 &a_b_p3>; };
		};
	};
};
"""


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture()
def colliding(tmp_path: Path) -> Path:
    p = tmp_path / "colliding.dts"
    p.write_text(COLLIDING)
    return p


def table_rows(capsys: pytest.CaptureFixture[str], tree: Path) -> list[dict[str, object]]:
    rc, out, _ = run(capsys, "table", str(tree), "--format", "json")
    assert rc == 0
    rows: list[dict[str, object]] = json.loads(out)["rows"]
    return rows


def generate(capsys: pytest.CaptureFixture[str], tree: Path, out: Path, lang: str) -> None:
    rc, _, err = run(capsys, "table", str(tree), "--guest-header", str(out), "--lang", lang)
    assert rc == 0, err


def c_constants(header: Path) -> list[tuple[str, str]]:
    """(name, the comment just above it) for every #define of a generated header."""
    lines = header.read_text().splitlines()
    out = []
    for i, line in enumerate(lines):
        m = re.fullmatch(r"#define (EVTCHN\w*) \d+", line)
        if m:
            out.append((m.group(1), lines[i - 1]))
    return out


def expected(rows: list[dict[str, object]], domain: str) -> set[tuple[object, int]]:
    """(node, or "xenstore"; port) of every row of `domain`."""
    return {(r["node"] if r["kind"] == "static" else "xenstore", int(str(r["port"])))
            for r in rows if r["domain"] == domain}


def from_comment(comment: str) -> object:
    if "xenstore:" in comment:
        return "xenstore"
    m = re.search(r"; node (\S+)", comment)
    assert m, comment
    return m.group(1)


@pytest.mark.parametrize("tree", ["example", "xenstore", "colliding"])
def test_c_headers_compile_and_print_the_table(capsys: pytest.CaptureFixture[str],
                                               tmp_path: Path, colliding: Path,
                                               tree: str) -> None:
    src = {"example": EXAMPLE, "xenstore": XENSTORE, "colliding": colliding}[tree]
    out = tmp_path / "h"
    generate(capsys, src, out, "c")
    rows = table_rows(capsys, src)
    domains = {str(r["domain"]) for r in rows}
    assert {p.stem for p in out.iterdir()} >= domains
    for header in sorted(out.iterdir()):
        assert header.suffix == ".h"
        res = subprocess.run(["gcc", "-fsyntax-only", "-Wall", "-Werror", "-std=c11",
                              "-x", "c", str(header)], capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        consts = c_constants(header)
        prog = tmp_path / f"{header.stem}.c"
        prog.write_text(f'#include <stdio.h>\n#include "{header.name}"\n'
                        f'#include "{header.name}"\n'  # the guard makes a second include harmless
                        "int main(void) {\n"
                        + "".join(f'\tprintf("%s %d\\n", "{n}", {n});\n' for n, _ in consts)
                        + "\treturn 0;\n}\n")
        exe = tmp_path / header.stem
        res = subprocess.run(["gcc", "-Wall", "-Werror", "-I", str(out), "-o", str(exe),
                              str(prog)], capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        printed = subprocess.run([str(exe)], capture_output=True, text=True, check=True)
        values = dict(line.split() for line in printed.stdout.splitlines())
        got = {(from_comment(c), int(values[n])) for n, c in consts}
        assert got == expected(rows, header.stem)
        assert len(values) == len(consts)  # no name twice


def test_colliding_names_are_disambiguated_as_documented(capsys: pytest.CaptureFixture[str],
                                                         tmp_path: Path,
                                                         colliding: Path) -> None:
    out = tmp_path / "h"
    generate(capsys, colliding, out, "c")
    names = {from_comment(c): n for n, c in c_constants(out / "domU1.h")}
    assert names == {
        "xenstore": "EVTCHN_XENSTORE",
        "/chosen/domU1/evtchn@2": "EVTCHN_A_B_P2",  # label a_b
        "/chosen/domU1/a-b": "EVTCHN_A_B_P3_P3",  # node a-b; EVTCHN_A_B_P3 is a label's
        "/chosen/domU1/evtchn@4": "EVTCHN_XENSTORE_P4",  # label xenstore, a static port
        "/chosen/domU1/evtchn@5": "EVTCHN_A_B_P3",  # label a_b_p3, unique: kept
    }
    assert "#define EVTCHN_XENSTORE 1\n" in (out / "domU1.h").read_text()


def test_same_tree_same_bytes(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                              colliding: Path) -> None:
    for lang in headers.LANGS:
        a, b = tmp_path / f"{lang}-a", tmp_path / f"{lang}-b"
        generate(capsys, colliding, a, lang)
        generate(capsys, colliding, b, lang)
        assert sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir())
        for p in a.iterdir():
            assert p.read_bytes() == (b / p.name).read_bytes()


def test_json_manifests_are_the_table_rows(capsys: pytest.CaptureFixture[str],
                                           tmp_path: Path, colliding: Path) -> None:
    out = tmp_path / "j"
    generate(capsys, colliding, out, "json")
    rows = table_rows(capsys, colliding)
    seen = []
    for f in sorted(out.iterdir()):
        doc = json.loads(f.read_text())
        assert doc["format"] == 1 and f.name == doc["domain"] + ".json"
        for p in doc["ports"]:
            name, source = p.pop("name"), p.pop("source")
            assert IDENT.fullmatch(name) and source in ("label", "node", "xenstore")
            seen.append(p)
    key = json.dumps
    assert sorted(map(key, seen)) == sorted(map(key, rows))


@pytest.mark.skipif(shutil.which("rustc") is None, reason="rustc is not on PATH")
def test_rust_files_compile_and_print_the_table(capsys: pytest.CaptureFixture[str],
                                                tmp_path: Path, colliding: Path) -> None:
    out = tmp_path / "rs"
    generate(capsys, colliding, out, "rust")
    rows = table_rows(capsys, colliding)
    for f in sorted(out.iterdir()):
        text = f.read_text()
        consts = re.findall(r"/// (.*)\npub const (EVTCHN\w*): u32 = \d+;", text)
        res = subprocess.run(["rustc", "--edition", "2021", "--crate-type", "lib",
                              "-D", "warnings", "--out-dir", str(tmp_path), str(f)],
                             capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        main_rs = tmp_path / f"main_{f.stem}.rs"
        main_rs.write_text(f'#[path = "{f}"]\nmod ports;\nfn main() {{\n'
                           + "".join(f'    println!("{n} {{}}", ports::{n});\n'
                                     for _, n in consts) + "}\n")
        exe = tmp_path / f"main_{f.stem}"
        res = subprocess.run(["rustc", "--edition", "2021", "-D", "warnings", "-o", str(exe),
                              str(main_rs)], capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        printed = subprocess.run([str(exe)], capture_output=True, text=True, check=True)
        values = dict(line.split() for line in printed.stdout.splitlines())
        got = {(from_comment(c), int(values[n])) for c, n in consts}
        assert got == expected(rows, f.stem)


def test_zephyr_overlays_compile_and_carry_the_ports(capsys: pytest.CaptureFixture[str],
                                                     tmp_path: Path, colliding: Path) -> None:
    out = tmp_path / "z"
    generate(capsys, colliding, out, "zephyr")
    rows = table_rows(capsys, colliding)
    c_out = tmp_path / "c"
    generate(capsys, colliding, c_out, "c")
    for f in sorted(out.iterdir()):
        assert f.suffix == ".overlay"
        whole = tmp_path / f"{f.stem}.dts"
        whole.write_text("/dts-v1/;\n" + f.read_text())  # as Zephyr appends it to the board
        res = subprocess.run(["dtc", "-q", "-I", "dts", "-O", "dtb", "-o", "/dev/null",
                              str(whole)], capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        user = load(str(whole)).find("/zephyr,user")
        assert user is not None
        props = {name: int.from_bytes(p.value, "big") for name, p in user.properties.items()}
        # the same names as the C header, as Zephyr's DT_PROP tokens (lower case)
        c_names = {n: int(v) for n, v in re.findall(r"#define (EVTCHN\w*) (\d+)",
                                                     (c_out / f"{f.stem}.h").read_text())}
        assert {k.replace("-", "_").upper(): v for k, v in props.items()} == c_names
        assert sorted(props.values()) == sorted(int(str(r["port"])) for r in rows
                                                if r["domain"] == f.stem)


def test_bad_directories_and_options_are_one_line(capsys: pytest.CaptureFixture[str],
                                                  tmp_path: Path) -> None:
    rc, _, err = run(capsys, "table", str(EXAMPLE), "--lang", "rust")
    assert rc == 2 and len(err.splitlines()) == 1 and "--guest-header" in err
    a_file = tmp_path / "file"
    a_file.write_text("keep")
    rc, _, err = run(capsys, "table", str(EXAMPLE), "--guest-header", str(a_file))
    assert rc == 2 and len(err.splitlines()) == 1 and err.startswith(str(a_file))
    assert a_file.read_text() == "keep"
    # the input itself where a header would go: refused, nothing written
    d = tmp_path / "d"
    d.mkdir()
    src = d / "domU1.h"
    src.write_text(EXAMPLE.read_text())
    rc, _, err = run(capsys, "table", str(src), "--guest-header", str(d))
    assert rc == 2 and len(err.splitlines()) == 1 and "input" in err
    assert src.read_text() == EXAMPLE.read_text()
    assert sorted(p.name for p in d.iterdir()) == ["domU1.h"]


def test_file_names_are_unique_ignoring_case() -> None:
    s = System(dom0=False)
    s.domu("guest")
    s.domu("Guest")
    s.domu("domU@1")  # Xen names a domain without the unit address: both are "domU"
    s.domu("domU@2")
    s.domu(".hidden")
    s.domu("a+b")
    stems = headers.file_stems(boot(s.config(), keep_going=True))
    assert stems == {1: "guest-d1", 2: "Guest-d2", 3: "domU-d3", 4: "domU-d4",
                     5: "d5-.hidden", 6: "a_b"}


# -- every tree: unique, valid names that carry the table's ports (hypothesis) --------

NAMES = st.sampled_from(["a", "A", "a_b", "a-b", "a.b", "xenstore", "evtchn", "evtchn_a",
                         "a_b_p3", "x1", "1x", "_", "é", "evtchn@3"])


@st.composite
def systems(draw: st.DrawFn) -> System:
    dom0 = draw(st.booleans())
    s = System(dom0=dom0)
    n = draw(st.integers(2, 3))
    doms = [s.domu(f"domU{i}", enhanced="enabled" if dom0 and draw(st.booleans()) else None)
            for i in range(1, n + 1)]
    used: dict[int, set[int]] = {i: set() for i in range(n)}
    for k in range(draw(st.integers(1, 6))):
        a, b = draw(st.integers(0, n - 1)), draw(st.integers(0, n - 1))
        pa, pb = draw(st.integers(2, 9)), draw(st.integers(2, 9))
        if a == b or pa in used[a] or pb in used[b]:
            continue
        used[a].add(pa)
        used[b].add(pb)
        na = s.evtchn(doms[a], draw(NAMES) + f"@{k}a" * draw(st.booleans()))
        nb = s.evtchn(doms[b], draw(NAMES) + f"@{k}b")
        s.set_link(na, pa, nb)
        s.set_link(nb, pb, na)
        for node in (na, nb):
            if draw(st.booleans()):
                node.labels = [draw(NAMES).replace("-", "_").replace(".", "_")]
    return s


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(systems())
def test_names_unique_valid_and_equal_to_the_table(s: System) -> None:
    res = boot(s.config(), keep_going=True)
    rows = tbl.rows(res)
    for lang in headers.LANGS:
        files = headers.manifests(res, rows, lang)
        assert len(files) == len(res.domains)
    per: dict[int, list[tbl.Row]] = {}
    for r in rows:
        per.setdefault(r.domid, []).append(r)
    for domid, mine in per.items():
        ports = headers.port_names(mine, res)
        names = [p.name for p in ports]
        assert len(set(names)) == len(names)
        for n in names:
            assert re.fullmatch(r"[A-Z][A-Z0-9_]*", n) and n.startswith("EVTCHN")
            assert n not in C_KEYWORDS and n not in RUST_KEYWORDS
            assert not n.endswith("_") and "__" not in n
        assert sorted((p.row.port, p.row.node) for p in ports) == sorted(
            (r.port, r.node) for r in mine)
        assert ("EVTCHN_XENSTORE" in names) == any(r.kind == "xenstore" for r in mine)
        text = headers.to_c(next(d for d in res.domains if d.domid == domid), ports, res)
        defined = dict(re.findall(r"#define (EVTCHN\w*) (\d+)", text))
        assert {n: int(v) for n, v in defined.items()} == {p.name: p.row.port for p in ports}


SHAPES = ["new", "new/deeper", "existing-dir", "existing-dir/", "a-file", "a-file/x",
          "missing/x", "", "link-to-dir", "dangling-link"]


@pytest.mark.parametrize("shape", SHAPES)
def test_directory_handling_is_guest_dts(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                         shape: str) -> None:
    """--guest-header DIR takes every DIR shape as --guest-dt DIR does: the same exit
    code, the same refusal (naming DIR), and files exactly where --guest-dt puts its."""
    results = []
    for option in ("--guest-dt", "--guest-header"):
        base = tmp_path / option.strip("-")
        base.mkdir()
        (base / "existing-dir").mkdir()
        (base / "a-file").write_text("keep")
        (base / "link-to-dir").symlink_to("existing-dir")
        (base / "dangling-link").symlink_to("nowhere")
        target = str(base / shape) if shape else ""
        rc, _, err = run(capsys, "table", str(EXAMPLE), option, target)
        # "1-domU1.dts" and "domU1.h" are the same domain's file
        made = sorted(re.sub(r"(^|/)(?:\d+-)?([^/]*)\.(dts|h)$", r"\1\2", str(p.relative_to(base)))
                      for p in base.rglob("*"))
        results.append((rc, err.replace(str(base), "BASE"), made))
        assert (base / "a-file").read_text() == "keep"
    (rc_dt, err_dt, made_dt), (rc_h, err_h, made_h) = results
    assert rc_h == rc_dt and err_h == err_dt and len(err_h.splitlines()) <= 1
    assert made_h == made_dt


def test_a_panicking_tree_still_gets_files_that_say_so(capsys: pytest.CaptureFixture[str],
                                                       tmp_path: Path) -> None:
    many = ROOT / "tests" / "data" / "boot" / "many-problems.dts"
    out = tmp_path / "h"
    rc, _, err = run(capsys, "table", str(many), "--guest-header", str(out))
    assert rc == 1 and "panic" in err
    files = sorted(out.iterdir())
    assert files
    for f in files:
        assert "WARNING: Xen panics with this tree" in f.read_text()
    ok = tmp_path / "ok"
    assert run(capsys, "table", str(EXAMPLE), "--guest-header", str(ok))[0] == 0
    assert not any("WARNING" in f.read_text() for f in ok.iterdir())
