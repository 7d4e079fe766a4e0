#!/usr/bin/env python3
"""Counts cuobjdump -sass output (stdin) per kernel; scripts/sass-stats.sh says what and why."""
import re, sys
from collections import Counter, OrderedDict
kernels, addr = OrderedDict(), {}
name = None
for line in sys.stdin:
    if "Function :" in line:
        name = line.split("Function :")[1].strip()
        kernels[name], addr[name] = [], []
    elif name and re.match(r"\s+/\*[0-9a-f]+\*/ ", line):
        text = re.sub(r"\s*/\* 0x[0-9a-f]+ \*/", "", line).strip()
        addr[name].append(int(re.match(r"/\*([0-9a-f]+)\*/", text).group(1), 16))
        kernels[name].append(re.sub(r"^/\*[0-9a-f]+\*/\s*", "", text))
def short(n):
    m = re.search(r"sm90(\d+)(\w+?)I(.*)EEv", n)
    if not m: return re.sub(r"E.*", "", re.sub(r".*\d+(\w+?_kernel)", r"\1", n))
    return m.group(2)[: int(m.group(1))] + "<" + ",".join(re.findall(r"L[ib](\d+)E", m.group(3))) + ">"
def opcode(i):
    return re.sub(r"^@!?U?P\w+\s+", "", i).split()[0].split(".")[0]
print("%-26s %6s %5s %5s %5s %6s %8s" % ("kernel", "instr", "ex2", "ldc", "bra", "hgmma", "ldl/stl"))
for n, ins in kernels.items():
    c = Counter(opcode(i) for i in ins)
    print("%-26s %6d %5d %5d %5d %6d %8d" % (short(n), len(ins), sum("MUFU.EX2" in i for i in ins), c["LDC"], c["BRA"],
                                          c["HGMMA"], c["LDL"] + c["STL"]))
print()
print("elementwise step (score GEMMs waited for -> dS stored or next GEMM issued; a full tile skips the mask):")
for n, ins in kernels.items():
    if not re.search(r"fwd_kernel|dkdv_kernel|dq_kernel", n): continue
    first = next((k for k, i in enumerate(ins) if "HGMMA" in i), None)
    if first is None: continue
    a = next(k for k in range(first, len(ins)) if "WARPGROUP.DEPBAR" in ins[k])
    b = next(k for k in range(a + 1, len(ins)) if re.match(r"(STSM|HGMMA|WARPGROUP.ARRIVE)", opcode(ins[k])))
    step = range(a + 1, b)
    # A full tile (no mask) jumps over the mask pass: the step's longest forward branch.
    skipped = set()
    for k in step:
        m = re.search(r"BRA\s+(?:\w+, )?0x([0-9a-f]+)", ins[k]) if opcode(ins[k]) == "BRA" else None
        if m:
            over = {j for j in step if j > k and addr[n][j] < int(m.group(1), 16)}
            skipped = max(skipped, over, key=len)
    c = Counter(opcode(ins[k]) for k in step if k not in skipped)
    print("  %-26s %4d, a full tile %4d: %s" % (short(n), len(step), len(step) - len(skipped),
                                              ", ".join("%s %d" % kv for kv in c.most_common(8))))
