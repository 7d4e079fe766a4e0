#!/usr/bin/env python3
"""Counts the SASS of object files per kernel; scripts/sass-stats.sh says what and why.
usage: sass_stats.py CUOBJDUMP OBJECT..."""
import re
import subprocess
import sys
from collections import Counter, OrderedDict


def read_kernels(lines):
    """{kernel: [(address, instruction text)]} in the order cuobjdump prints them."""
    kernels, name = OrderedDict(), None
    for line in lines:
        if "Function :" in line:
            name = line.split("Function :")[1].strip()
            kernels[name] = []
        elif name and re.match(r"\s+/\*[0-9a-f]+\*/ ", line):
            text = re.sub(r"\s*/\* 0x[0-9a-f]+ \*/", "", line).strip()
            m = re.match(r"/\*([0-9a-f]+)\*/\s*(.*)", text)
            kernels[name].append((int(m.group(1), 16), m.group(2)))
    return kernels


def short(name):
    """sparrow::attn::cuda::sm90::dkdv_kernel<64, true, false, true, 2> → dkdv_kernel<64,1,0,1,2>."""
    m = re.search(r"sm90(\d+)(\w+?)I(.*)EEv", name)
    if not m:
        return re.sub(r"E.*", "", re.sub(r".*\d+(\w+?_kernel)", r"\1", name))
    return m.group(2)[: int(m.group(1))] + "<" + ",".join(re.findall(r"L[ib](\d+)E", m.group(3))) + ">"


def opcode(text):
    """The opcode without its predicate and modifiers: '@!P0 BRA 0x10' → 'BRA'."""
    return re.sub(r"^@!?U?P\w+\s+", "", text).split()[0].split(".")[0]


def elementwise_step(ins):
    """The instructions (indices) of a kernel's first elementwise step — from the first wgmma wait
    after the first HGMMA to the next dS store (STSM) or GEMM issue — and the subset a full tile
    runs: all but those the step's longest forward branch (the jump over the mask pass) skips."""
    first = next((k for k, (_, i) in enumerate(ins) if "HGMMA" in i), None)
    if first is None:
        return None, None
    a = next(k for k in range(first, len(ins)) if "WARPGROUP.DEPBAR" in ins[k][1])
    b = next(k for k in range(a + 1, len(ins)) if re.match(r"(STSM|HGMMA|WARPGROUP)", opcode(ins[k][1])))
    step = range(a + 1, b)
    skipped = set()
    for k in step:
        m = re.search(r"BRA\s+(?:\w+, )?0x([0-9a-f]+)", ins[k][1]) if opcode(ins[k][1]) == "BRA" else None
        if m:
            over = {j for j in step if j > k and ins[j][0] < int(m.group(1), 16)}
            skipped = max(skipped, over, key=len)
    return step, [k for k in step if k not in skipped]


def read_resources(text):
    """{kernel: (registers, local bytes a thread: spills and stack)} from cuobjdump -res-usage."""
    res, name = {}, None
    for line in text.splitlines():
        m = re.match(r"\s*Function (\S+):", line)
        if m:
            name = m.group(1)
        elif name and "REG:" in line:
            f = dict(re.findall(r"(\w+):(\d+)", line))
            res[name] = (int(f["REG"]), int(f["LOCAL"]))
    return res


cuobjdump, objects = sys.argv[1], sys.argv[2:]
run = lambda flag, o: subprocess.run([cuobjdump, flag, o], check=True, capture_output=True, text=True).stdout
kernels, resources = OrderedDict(), {}
for o in objects:
    kernels.update(read_kernels(run("-sass", o).splitlines()))
    resources.update(read_resources(run("-res-usage", o)))
print("%-26s %6s %5s %5s %5s %6s %8s %5s %6s" % ("kernel", "instr", "ex2", "ldc", "bra", "hgmma", "ldl/stl", "regs",
                                                "local"))
for name, ins in kernels.items():
    c = Counter(opcode(i) for _, i in ins)
    ex2 = sum("MUFU.EX2" in i for _, i in ins)
    regs, local = resources.get(name, (0, 0))
    print("%-26s %6d %5d %5d %5d %6d %8d %5d %6d" % (short(name), len(ins), ex2, c["LDC"], c["BRA"], c["HGMMA"],
                                                  c["LDL"] + c["STL"], regs, local))
print()
print("elementwise step (score GEMMs waited for -> dS stored or next GEMM issued; a full tile skips the mask):")
for name, ins in kernels.items():
    if not re.search(r"fwd_kernel|dkdv_kernel|dq_kernel", name):
        continue
    step, full = elementwise_step(ins)
    if step is None:
        continue
    c = Counter(opcode(ins[k][1]) for k in full)
    print("  %-26s %4d, a full tile %4d: %s" % (short(name), len(step), len(full),
                                              ", ".join("%s %d" % kv for kv in c.most_common(8))))
