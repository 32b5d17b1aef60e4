"""Unit tests of the conformance runner that need neither QEMU nor Xen."""

from __future__ import annotations

import contextlib
import copy
import io
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evtchn_spec.conformance import cli, dtbuild, fdt, qemu, report, trace
from evtchn_spec.conformance.tools import ToolsMissing, find_tools
from evtchn_spec.grammar.errors import InputError
from evtchn_spec.oracle.compare import PORT_FIELDS, differences, run_differences

DATA = Path(__file__).resolve().parent / "data" / "xen"

# ---------------------------------------------------------------- fdt

names = st.from_regex(r"[a-z][a-z0-9,._+-]{0,12}(@[0-9a-f]{1,8})?", fullmatch=True)
prop_names = st.from_regex(r"[a-z#][a-z0-9,._+#-]{0,14}", fullmatch=True)


@st.composite
def nodes(draw: st.DrawFn, depth: int = 0) -> fdt.FdtNode:
    props = draw(st.lists(st.tuples(prop_names, st.binary(max_size=24)), max_size=4,
                          unique_by=lambda kv: kv[0]))
    kids = [] if depth >= 3 else draw(st.lists(nodes(depth + 1), max_size=3,
                                               unique_by=lambda n: n.name))
    return fdt.FdtNode("" if depth == 0 else draw(names), list(props), kids)


@given(nodes(), st.lists(st.tuples(st.integers(0, 2**64 - 1), st.integers(1, 2**64 - 1)),
                         max_size=3), st.integers(0, 7))
def test_fdt_round_trip(root: fdt.FdtNode, rsv: list[tuple[int, int]], cpu: int) -> None:
    blob = fdt.serialize(fdt.Fdt(root, rsv, cpu))
    back = fdt.parse(blob)
    assert back.root == root
    assert back.reserved == rsv
    assert back.boot_cpuid == cpu
    assert fdt.serialize(back) == blob


@pytest.mark.skipif(shutil.which("dtc") is None, reason="dtc not installed")
@settings(max_examples=15, deadline=None)
@given(nodes())
def test_fdt_output_is_accepted_by_dtc(root: fdt.FdtNode) -> None:
    blob = fdt.serialize(fdt.Fdt(root))
    proc = subprocess.run(["dtc", "-q", "-I", "dtb", "-O", "dtb", "-o", "-", "-"], input=blob,
                          capture_output=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert fdt.parse(proc.stdout).root == root


def test_fdt_rejects_garbage() -> None:
    with pytest.raises(fdt.FdtError):
        fdt.parse(b"\0" * 64)
    with pytest.raises(fdt.FdtError):
        fdt.parse(b"\xd0\x0d\xfe\xed")


def test_cells_encoding() -> None:
    assert fdt.cells(0x1_2345_6789, 2) == struct.pack(">II", 1, 0x23456789)
    assert fdt.cells(0x5000_0000, 1) == struct.pack(">I", 0x5000_0000)


# ---------------------------------------------------------------- dtbuild

def _qemu_like() -> fdt.Fdt:
    root = fdt.FdtNode("", [("#address-cells", fdt.u32s(2)), ("#size-cells", fdt.u32s(2)),
                            ("compatible", fdt.string("linux,dummy-virt"))])
    root.children.append(fdt.FdtNode("chosen", [("stdout-path", fdt.string("/pl011@9000000"))]))
    root.children.append(fdt.FdtNode("intc@8000000", [("phandle", fdt.u32s(0x8002))]))
    return fdt.Fdt(root)


def _user(dts: str) -> fdt.Fdt:
    proc = subprocess.run(["dtc", "-q", "-I", "dts", "-O", "dtb", "-o", "-", "-"],
                          input=dts.encode(), capture_output=True, check=True)
    return fdt.parse(proc.stdout)


USER = """/dts-v1/;
/ { chosen { #address-cells = <1>; #size-cells = <1>;
      xen,xen-bootargs = "sched=null";
      d1 { compatible = "xen,domain"; memory = <0 0x20000>;
           module@1 { compatible = "multiboot,kernel", "multiboot,module"; reg = <1 2>;
                      keep { }; };
           ramdisk@2 { compatible = "multiboot,ramdisk", "multiboot,module"; reg = <3 4>; };
           a: evtchn@1 { compatible = "xen,evtchn-v1"; xen,evtchn = <1 &b>; }; };
      skip { compatible = "vendor,other"; };
      d2 { compatible = "xen,domain"; #address-cells = <2>; #size-cells = <2>;
           b: evtchn@1 { compatible = "xen,evtchn-v1"; xen,evtchn = <2 &a>; }; }; };
    extra { x = <1>; };
    stray { e { compatible = "xen,evtchn-v1"; }; };
    intc@8000000 { y = <2>; }; };
"""


@pytest.mark.skipif(shutil.which("dtc") is None, reason="dtc not installed")
def test_build_places_one_kernel_per_domain() -> None:
    plan = dtbuild.build(_user(USER), _qemu_like(), dom0=False, module_size=0x9000,
                         add_kernels=True)
    chosen = plan.tree.root.child("chosen")
    assert chosen is not None
    assert [d.domid for d in plan.domains] == [1, 2]
    assert [d.name for d in plan.domains] == ["d1", "d2"]
    d1, d2 = chosen.child("d1"), chosen.child("d2")
    assert d1 is not None and d2 is not None
    # d1: the user's kernel node is reused (its sub-node kept), the ramdisk dropped
    mods = [c for c in d1.children if "multiboot,module" in c.strings("compatible")]
    assert [m.name for m in mods] == ["module@1"]
    assert mods[0].child("keep") is not None
    assert mods[0].prop("reg") == fdt.u32s(plan.domains[0].load_addr, 0x9000)  # chosen's 1/1
    # d2 has its own 2/2 cells
    mod2 = [c for c in d2.children if "multiboot,kernel" in c.strings("compatible")]
    assert mod2[0].prop("reg") == fdt.cells(plan.domains[1].load_addr, 2) + fdt.cells(0x9000, 2)
    assert plan.domains[1].load_addr - plan.domains[0].load_addr >= 0x9000
    # bootargs: the user's first, ours after (Xen keeps the last occurrence)
    args = chosen.strings("xen,xen-bootargs")[0]
    assert args.startswith("sched=null ") and args.endswith(dtbuild.BASE_BOOTARGS)
    assert "dom0_mem" not in args
    # QEMU's own nodes win; only new top-level nodes holding evtchn nodes are added
    intc = plan.tree.root.child("intc@8000000")
    assert intc is not None and intc.prop("y") is None
    assert plan.tree.root.child("extra") is None
    assert plan.tree.root.child("stray") is not None
    assert chosen.strings("stdout-path") == ["/pl011@9000000"]


@pytest.mark.skipif(shutil.which("dtc") is None, reason="dtc not installed")
def test_build_with_dom0_adds_hardware_domain() -> None:
    plan = dtbuild.build(_user(USER), _qemu_like(), dom0=True, add_kernels=True)
    assert [d.domid for d in plan.domains] == [0, 1, 2]
    chosen = plan.tree.root.child("chosen")
    assert chosen is not None
    kernels = [c for c in chosen.children if "multiboot,kernel" in c.strings("compatible")]
    assert len(kernels) == 1
    assert "dom0_mem=" in chosen.strings("xen,xen-bootargs")[0]


@pytest.mark.skipif(shutil.which("dtc") is None, reason="dtc not installed")
def test_build_keeps_kernel_less_domains_as_written() -> None:
    plan = dtbuild.build(_user(USER), _qemu_like(), dom0=False, module_size=0x9000)
    assert [(d.domid, d.name) for d in plan.domains] == [(1, "d1")]
    assert any("d2" in n for n in plan.notes)
    view = plan.user_view
    assert view is not None
    chosen = view.root.child("chosen")
    assert chosen is not None
    d1, d2 = chosen.child("d1"), chosen.child("d2")
    assert d1 is not None and d2 is not None
    assert [c.name for c in d1.children] == ["module@1", "evtchn@1"]
    assert d1.children[0].prop("reg") == fdt.u32s(plan.domains[0].load_addr, 0x9000)
    assert [c.name for c in d2.children] == ["evtchn@1"]
    assert chosen.strings("xen,xen-bootargs") == ["sched=null"]
    assert fdt.parse(fdt.serialize(view)).root == view.root


@pytest.mark.skipif(shutil.which("dtc") is None, reason="dtc not installed")
def test_build_renumbers_a_phandle_clash() -> None:
    """A phandle QEMU's tree also uses is renumbered (and said so), no longer refused."""
    user = _user("/dts-v1/; / { chosen { n { phandle = <0x8002>; }; }; };")
    plan = dtbuild.build(user, _qemu_like(), dom0=False)
    chosen = plan.tree.root.child("chosen")
    assert chosen is not None
    n = chosen.child("n")
    assert n is not None and n.u32("phandle") not in (None, 0x8002)
    assert any(note.startswith("phandle 0x8002 of /chosen/n") for note in plan.notes)


@pytest.mark.skipif(shutil.which("dtc") is None, reason="dtc not installed")
def test_ram_grows_with_domain_memory() -> None:
    small = _user("/dts-v1/; / { chosen { d { compatible = \"xen,domain\"; "
                  "memory = <0 0x10000>; }; }; };")
    big = _user("/dts-v1/; / { chosen { d { compatible = \"xen,domain\"; "
                "memory = <0 0x200000>; }; }; };")
    assert dtbuild.ram_needed(small, dom0=False) == 1024
    assert dtbuild.ram_needed(big, dom0=False) >= 2048 + 768
    assert dtbuild.has_dom0_kernel(small) is False


def test_compile_source_reports_dtc_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.dts"
    bad.write_text("/dts-v1/;\n/ { x = <1; };\n")
    with pytest.raises(InputError) as exc:
        dtbuild.compile_source(str(bad))
    assert str(exc.value).startswith(str(bad))
    assert "\n" not in str(exc.value)


# ---------------------------------------------------------------- guest patching

def test_patch_guest_writes_the_config_block() -> None:
    image = b"\0" * 100 + b"EVTCFG01" + b"\0" * 2000
    out = qemu.patch_guest(image, "0:domU1", flags=1, slot_ms=300, nslots=2, t0_ms=2500,
                           cmds=[qemu.Command(1, "send", 10)])
    off = 100
    assert len(out) == len(image)
    assert out[off + 8:off + 16] == b"0:domU1\0"
    assert struct.unpack_from("<5I", out, off + 40) == (1, 2, 300, 2500, 1)
    assert struct.unpack_from("<4I", out, off + 60) == (1, qemu.OPS["send"], 10, 0)


def test_patch_guest_needs_exactly_one_block() -> None:
    with pytest.raises(RuntimeError):
        qemu.patch_guest(b"nothing here", "t")
    with pytest.raises(RuntimeError):
        qemu.patch_guest(b"EVTCFG01" * 2 + b"\0" * 100, "t")


def test_guest_source_matches_the_runner() -> None:
    """The C side's op numbers and flag are the ones the Python side writes."""
    src = (Path(qemu.__file__).parent / "guest" / "guest.c").read_text()
    guest_names = {"send": "OP_SEND", "close": "OP_CLOSE", "unmask": "OP_UNMASK",
                   "setmask": "OP_SETMASK", "clear": "OP_CLEAR", "alloc": "OP_ALLOC",
                   "bind": "OP_BIND", "ipi": "OP_IPI", "virq": "OP_VIRQ",
                   "bind_vcpu": "OP_BIND_VCPU", "status": "OP_STATUS", "reset": "OP_RESET",
                   "reset_cont": "OP_RESET_CONT"}
    assert set(guest_names) == set(qemu.OPS)
    for op, num in qemu.OPS.items():
        assert f"#define {guest_names[op]} {num} " in src
    for guest_op, _, _ in trace.OPS.values():
        assert guest_op in qemu.OPS
    assert f"#define FLAG_NO_SHUTDOWN {qemu.FLAG_NO_SHUTDOWN}" in src
    assert f"#define MAX_CMDS {qemu.MAX_CMDS}" in src


# ---------------------------------------------------------------- console -> boot JSON

PLAN = dtbuild.BootPlan(tree=_qemu_like(), domains=[
    dtbuild.DomainPlan(0, 1, "domU1", "/chosen/domU1", 0x5000_0000, "0:domU1"),
    dtbuild.DomainPlan(1, 2, "domU2", "/chosen/domU2", 0x5020_0000, "1:domU2")])

BOOTED = """(XEN) Freed 348kB init memory.
(d2) @evt hello tag=1:domU2 flags=0 slots=0 cmds=0
(d2) @evt shinfo rc=0 gpa=0x40008000
(d1) @evt hello tag=0:domU1 flags=0 slots=0 cmds=0
(d2) @evt port phase=0 port=11 st=2 rdom=1 rport=10 vcpu=0 pend=1 mask=0
(d2) @evt valid phase=0 n=64 rc=-22
(d2) @evt end phase=0
(d2) @evt done
(d1) @evt shinfo rc=0 gpa=0x40008000
(d1) @evt port phase=0 port=1 st=1 rdom=0 vcpu=0 pend=0 mask=1
(d1) @evt port phase=0 port=10 st=2 rdom=2 rport=11 vcpu=0 pend=0 mask=0
(d1) @evt end phase=0
(d1) @evt done""".splitlines()


def test_boot_json_from_console() -> None:
    doc = report.boot_json(BOOTED, PLAN, "done")
    assert doc["outcome"] == "booted"
    assert doc["domains"]["1"] == {"name": "domU1", "ports": [
        {"port": 1, "status": "unbound", "remote_dom": 0, "static": False, "pending": False,
         "masked": True},
        {"port": 10, "status": "interdomain", "remote_dom": 2, "remote_port": 11,
         "static": True, "pending": False, "masked": False}]}
    assert doc["domains"]["2"]["ports"][0]["pending"] is True
    assert doc["observed"]["guests"]["2"]["valid_ports"] == 64


def test_silent_xen_is_not_booted() -> None:
    empty = dtbuild.BootPlan(tree=_qemu_like())
    assert report.boot_json([], empty, "timeout")["outcome"] == "incomplete"
    assert report.boot_json(["(XEN) Freed 348kB init memory."], empty,
                            "done")["outcome"] == "booted"


def test_missing_domain_makes_the_boot_incomplete() -> None:
    lines = [ln for ln in BOOTED if not ln.startswith("(d1)")]
    doc = report.boot_json(lines, PLAN, "timeout")
    assert doc["outcome"] == "incomplete"
    assert doc["domains"]["1"]["ports"] == []


PANIC = ["(XEN) Loading d2 DTB to 0x0000000043e00000-0x0000000043e003e2",
         "(XEN) evtchn_alloc_unbound() failure (Error -16) ",  # Xen's own trailing space
         "(XEN) ",
         "(XEN) ****************************************",
         "(XEN) Panic on CPU 0:",
         "(XEN) Could not set up domains evtchn",
         "(XEN) ****************************************"]


def test_panic_keeps_the_error_line_verbatim() -> None:
    doc = report.boot_json(PANIC, PLAN, "panic")
    assert doc == {"format": 1, "outcome": "panic",
                   "error": "evtchn_alloc_unbound() failure (Error -16) ",
                   "panic": "Could not set up domains evtchn",
                   "observed": {"version": "", "dom0": False}}


def test_panic_after_a_progress_line_has_no_error() -> None:
    lines = ["(XEN) *** LOADING DOMU cpus=1 memory=10000KB ***", "(XEN) ",
             "(XEN) ****************************************", "(XEN) Panic on CPU 1:",
             "(XEN) At the moment, Xenstore support requires dom0 to be present",
             "(XEN) ****************************************"]
    doc = report.boot_json(lines, PLAN, "panic")
    assert doc["error"] is None
    assert doc["panic"] == "At the moment, Xenstore support requires dom0 to be present"


@given(st.lists(st.text(max_size=30), max_size=30))
def test_console_parsing_never_crashes(lines: list[str]) -> None:
    doc = report.boot_json(lines, PLAN, "timeout")
    assert doc["outcome"] in ("booted", "panic", "incomplete")


# ---------------------------------------------------------------- compare

def _port_of(p: Any) -> int:
    return int(p["port"])


port_st: st.SearchStrategy[dict[str, Any]] = cast(Any, st.fixed_dictionaries({
    "port": st.integers(1, 1023), "status": st.sampled_from(["unbound", "interdomain"]),
    "remote_dom": st.integers(0, 4), "remote_port": st.integers(1, 1023),
    "static": st.booleans(), "pending": st.booleans(), "masked": st.booleans()}))
boot_st = st.fixed_dictionaries({
    "format": st.just(1), "outcome": st.just("booted"),
    "domains": st.dictionaries(st.sampled_from(["0", "1", "2", "3"]), st.fixed_dictionaries({
        "name": st.sampled_from(["dom0", "domU1", "x"]),
        "ports": st.lists(port_st, max_size=4, unique_by=_port_of)}), max_size=3)})


@given(boot_st)
def test_compare_identity(doc: dict[str, Any]) -> None:
    assert differences(doc, copy.deepcopy(doc)) == []


@given(boot_st, st.data())
def test_compare_sees_any_port_field_change(doc: dict[str, Any], data: st.DataObject) -> None:
    with_ports = [d for d in doc["domains"].values() if d["ports"]]
    if not with_ports:
        return
    other = copy.deepcopy(doc)
    dom = data.draw(st.sampled_from(sorted(k for k, v in other["domains"].items() if v["ports"])))
    port = data.draw(st.sampled_from(other["domains"][dom]["ports"]))
    field = data.draw(st.sampled_from(PORT_FIELDS))
    value = port[field]
    if isinstance(value, bool):
        port[field] = not value
    elif isinstance(value, int):
        port[field] = value + 1
    else:
        port[field] = "closed" if value != "closed" else "unbound"
    diffs = differences(doc, other)
    assert len(diffs) == 1 and field in diffs[0]


def test_compare_panics() -> None:
    a = {"format": 1, "outcome": "panic", "error": "x ", "panic": "p"}
    assert differences(a, dict(a, error="x")) == ["error: xen='x ' reference='x'"]
    assert differences(a, dict(a, node="/chosen/n")) == []  # Xen never names the node
    assert differences(a, {"outcome": "booted"})[0].startswith("outcome")


# ---------------------------------------------------------------- traces

def test_trace_parse_and_schedule() -> None:
    calls = trace.parse({"calls": [{"caller": 1, "op": "send", "args": {"port": 10}},
                                   {"caller": 2, "op": "mask", "args": {"port": 3}}]})
    cmds, slots = trace.schedule(calls)
    assert slots == 2
    assert cmds == {1: [qemu.Command(0, "send", 10)], 2: [qemu.Command(1, "setmask", 3)]}
    bind = trace.parse([{"caller": 2, "op": "bind_interdomain",
                         "args": {"remote_dom": 1, "remote_port": 7}},
                        {"caller": 2, "op": "bind_ipi", "args": {}}])
    assert trace.schedule(bind)[0] == {2: [qemu.Command(0, "bind", 7, 1),
                                           qemu.Command(1, "ipi", 0, 0)]}
    assert bind[0].args_json() == {"remote_port": 7, "remote_dom": 1}


@pytest.mark.parametrize("bad", [
    {"calls": [{"caller": -1, "op": "send", "args": {"port": 1}}]},
    {"calls": [{"caller": 1, "op": "bind", "args": {"port": 1}}]},
    {"calls": [{"caller": 1, "op": "bind_interdomain", "args": {"remote_dom": 1}}]},
    {"calls": [{"caller": 1, "op": "send", "args": {"port": True}}]},
    {"calls": [{"caller": 1, "op": "send", "args": {}}]},
    {"calls": "no"},
    [{"caller": 1, "op": "send", "args": {"port": 1}}] * (qemu.MAX_CMDS + 1),
])
def test_trace_rejects_bad_input(bad: Any) -> None:
    with pytest.raises(InputError):
        trace.parse(bad, "t.json")


# ---------------------------------------------------------------- missing tools

def test_missing_tools_one_line_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVTCHN_SPEC_CACHE", str(tmp_path / "empty"))
    with pytest.raises(ToolsMissing) as exc:
        find_tools()
    assert "xen-hypervisor-4.17-arm64" in str(exc.value)
    assert "install.sh" in str(exc.value)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = cli.main([str(DATA / "pair-basic.dts")])
    assert rc == 2
    assert len(err.getvalue().strip().splitlines()) == 1
    assert "missing" in err.getvalue()


def test_a_release_not_in_the_cache_is_one_line(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Every release can be booted once it is in the cache; without it, one line."""
    monkeypatch.setenv("EVTCHN_SPEC_CACHE", str(tmp_path))
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = cli.main([str(DATA / "pair-basic.dts"), "--xen", "4.19"])
    assert rc == 2
    assert err.getvalue().count("\n") == 1
    assert "4.19" in err.getvalue() or "missing" in err.getvalue()


def test_run_differences() -> None:
    port = {"port": 1, "status": "interdomain", "remote_dom": 1, "remote_port": 2,
            "static": True, "pending": False, "masked": False}
    boot: dict[str, Any] = {"format": 1, "outcome": "booted",
                            "domains": {"1": {"name": "a", "ports": [port]}}}
    call = {"caller": 1, "op": "send", "args": {"port": 1}, "rc": 0}
    run: dict[str, Any] = {"initial": boot, "calls": [call], "final": copy.deepcopy(boot)}
    assert run_differences(run, copy.deepcopy(run)) == []
    other = copy.deepcopy(run)
    other["calls"][0]["rc"] = -22
    other["final"]["domains"]["1"]["ports"][0]["pending"] = True
    diffs = run_differences(run, other)
    assert len(diffs) == 2
    assert diffs[0].startswith("call 0") and diffs[1].startswith("final:")
    change = {"dom": 1, "port": 1, "field": "pending", "from": False, "to": True}
    with_change = copy.deepcopy(run)
    with_change["calls"][0]["changes"] = [change, dict(change, field="vcpu")]
    without = copy.deepcopy(run)
    without["calls"][0]["changes"] = [dict(change, field="vcpu", to=3)]
    assert run_differences(with_change, without) == [
        "call 0 (send by d1): change only on xen: (1, 1, 'pending', False, True)"]


def test_the_xen_subcommand_wires_the_handler() -> None:
    import argparse

    from evtchn_spec.cli import xen as xen_subcommand

    parser = argparse.ArgumentParser(prog="evtchn-spec")
    sub = parser.add_subparsers(dest="command", required=True)
    xen_subcommand.register(sub)
    args = parser.parse_args(["xen", "a.dts", "--dom0", "--timeout", "7", "--compare"])
    assert args.handler is cli.cmd_xen
    assert (args.file, args.dom0, args.timeout, args.compare) == ("a.dts", True, 7.0, True)
    assert args.xen_version == "4.17" and args.trace is None
