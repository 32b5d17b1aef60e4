"""Generate large dom0less device trees for the benchmarks.

A SoC-like base tree (cpus, memory, GIC, timer, clock controllers, a few hundred
devices with phandle references, byte strings and comments) plus, under /chosen,
D `xen,domain` nodes and C static event channels in the `xen` dialect: each
channel is two `xen,evtchn-v1` nodes in two different random domains pointing at
each other by label. Ports are unique per domain (so the tree boots), drawn from
1..1023 (a domU's max_evtchn_port in Xen 4.17); with many channels per domain a
domain can need more than 1023 ports, in which case the generator reuses domains
less densely (it picks among domains that still have free ports).

Usage: python benchmarks/gen_dts.py --domains D --channels C [--seed N]
       [--devices N] [--collisions K] -o OUT.dts
"""

from __future__ import annotations

import argparse
import random
import sys

MAX_PORT = 1023


def base_tree(out: list[str], devices: int, rng: random.Random) -> None:
    out.append("/dts-v1/;\n\n/memreserve/ 0x48000000 0x00100000;\n\n/ {")
    out.append('\tcompatible = "bench,soc";\n\tmodel = "evtchn-spec benchmark SoC";')
    out.append("\t#address-cells = <2>;\n\t#size-cells = <2>;\n\tinterrupt-parent = <&gic>;\n")
    out.append("\taliases {\n\t\tserial0 = &uart0;\n\t};\n")
    out.append("\tcpus {\n\t\t#address-cells = <1>;\n\t\t#size-cells = <0>;")
    for i in range(8):
        out.append(
            f"\t\tcpu{i}: cpu@{i} {{\n\t\t\tdevice_type = \"cpu\";\n"
            f'\t\t\tcompatible = "arm,cortex-a57";\n\t\t\treg = <{i}>;\n'
            f'\t\t\tenable-method = "psci";\n\t\t}};'
        )
    out.append("\t};\n")
    out.append('\tpsci {\n\t\tcompatible = "arm,psci-1.0";\n\t\tmethod = "hvc";\n\t};\n')
    out.append("\tmemory@40000000 {\n\t\tdevice_type = \"memory\";\n"
               "\t\treg = <0x00 0x40000000 0x02 0x00000000>;\n\t};\n")
    out.append("\ttimer {\n\t\tcompatible = \"arm,armv8-timer\";\n"
               "\t\tinterrupts = <1 13 0xf04>, <1 14 0xf04>, <1 11 0xf04>, <1 10 0xf04>;\n\t};\n")
    out.append("\tgic: interrupt-controller@8000000 {\n\t\tcompatible = \"arm,gic-v3\";\n"
               "\t\t#interrupt-cells = <3>;\n\t\tinterrupt-controller;\n"
               "\t\treg = <0x00 0x8000000 0x00 0x10000>, <0x00 0x80a0000 0x00 0xf60000>;\n\t};\n")
    for c in range(4):
        out.append(f"\tclk{c}: clock-controller@{0x9100000 + c * 0x1000:x} {{\n"
                   f'\t\tcompatible = "bench,clk";\n\t\t#clock-cells = <1>;\n'
                   f"\t\treg = <0x00 {0x9100000 + c * 0x1000:#x} 0x00 0x1000>;\n\t}};\n")
    out.append("\tsoc {\n\t\tcompatible = \"simple-bus\";\n\t\t#address-cells = <2>;\n"
               "\t\t#size-cells = <2>;\n\t\tranges;\n")
    for d in range(devices):
        addr = 0xA000000 + d * 0x1000
        label = "uart0" if d == 0 else f"dev{d}"
        mac = " ".join(f"{rng.randrange(256):02x}" for _ in range(6))
        out.append(
            f"\t\t/* device {d} */\n\t\t{label}: device@{addr:x} {{\n"
            f'\t\t\tcompatible = "bench,dev{d % 17}", "bench,dev";\n'
            f"\t\t\treg = <0x00 {addr:#x} 0x00 0x1000>;\n"
            f"\t\t\tinterrupts = <0 {d % 988} 4>;\n"
            f"\t\t\tclocks = <&clk{d % 4} {d % 64}>, <&clk{(d + 1) % 4} {(d * 7) % 64}>;\n"
            f'\t\t\tclock-names = "core", "bus";\n'
            f"\t\t\tlocal-mac-address = [{mac}];\n"
            f'\t\t\tstatus = "{"okay" if d % 3 else "disabled"}";\n\t\t}};'
        )
    out.append("\t};\n")


def chosen(out: list[str], domains: int, channels: int, collisions: int,
           rng: random.Random) -> None:
    free: list[list[int]] = []
    for _ in range(domains):
        ports = list(range(1, MAX_PORT + 1))
        rng.shuffle(ports)
        free.append(ports)
    nodes: list[list[str]] = [[] for _ in range(domains)]
    first_port: dict[int, int] = {}
    open_domains = list(range(domains))
    for c in range(channels):
        open_domains = [d for d in open_domains if free[d]]
        if len(open_domains) < 2:
            sys.exit("gen_dts: not enough free ports; use more domains")
        a, b = rng.sample(open_domains, 2)
        pa, pb = free[a].pop(), free[b].pop()
        if c < collisions and a in first_port:
            pa = first_port[a]  # deliberately collide with the domain's first port
        first_port.setdefault(a, pa)
        nodes[a].append(f"\t\t\tec{c}a: evtchn@{c}a {{\n\t\t\t\tcompatible = \"xen,evtchn-v1\";\n"
                        f"\t\t\t\txen,evtchn = <{pa} &ec{c}b>;\n\t\t\t}};")
        nodes[b].append(f"\t\t\tec{c}b: evtchn@{c}b {{\n\t\t\t\tcompatible = \"xen,evtchn-v1\";\n"
                        f"\t\t\t\txen,evtchn = <{pb} &ec{c}a>;\n\t\t\t}};")
    out.append('\tchosen {\n\t\t#address-cells = <1>;\n\t\t#size-cells = <1>;\n'
               '\t\txen,xen-bootargs = "console=dtuart dtuart=serial0";\n'
               '\t\tstdout-path = "serial0:115200n8";\n')
    for d in range(domains):
        base = 0x50000000 + d * 0x10000  # stays below 4 GiB for 2,048 domains
        out.append(
            f"\t\tdomU{d + 1} {{\n\t\t\tcompatible = \"xen,domain\";\n"
            f"\t\t\t#address-cells = <1>;\n\t\t\t#size-cells = <1>;\n"
            f"\t\t\tmemory = <0 0x20000>;\n\t\t\tcpus = <1>;\n"
            f'\t\t\txen,enhanced = "no-xenstore";\n'
            f"\t\t\tmodule@{base:x} {{\n"
            f'\t\t\t\tcompatible = "multiboot,kernel", "multiboot,module";\n'
            f"\t\t\t\treg = <{base:#x} 0x10000>;\n"
            f'\t\t\t\tbootargs = "console=ttyAMA0";\n\t\t\t}};'
        )
        out.extend(nodes[d])
        out.append("\t\t};")
    out.append("\t};\n};")


def generate(domains: int, channels: int, *, seed: int = 1, devices: int = 300,
             collisions: int = 0) -> str:
    rng = random.Random(seed)
    out: list[str] = []
    base_tree(out, devices, rng)
    chosen(out, domains, channels, collisions, rng)
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--domains", type=int, required=True)
    ap.add_argument("--channels", type=int, required=True)
    ap.add_argument("--devices", type=int, default=300)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--collisions", type=int, default=0,
                    help="make the first K channels reuse a port already taken in their domain")
    ap.add_argument("-o", "--output", required=True)
    a = ap.parse_args()
    text = generate(a.domains, a.channels, seed=a.seed, devices=a.devices,
                    collisions=a.collisions)
    with open(a.output, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
