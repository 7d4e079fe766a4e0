#!/usr/bin/env bash
# The sm_90a attention kernels' SASS, counted here, without a GPU: what a kernel change does to the
# instruction stream before a lent machine's minutes go to timing it.
#   scripts/sass-stats.sh [BUILD_DIR]     (default build-dev, configured as gpu-prebuilt-call.sh's header says)
# Per kernel: instructions, MUFU.EX2 (exp2), LDC (constant-bank loads into registers), branches,
# HGMMA, LDL/STL (local-memory accesses: spills), registers and local bytes a thread (cuobjdump
# -res-usage: what ptxas -v says, without recompiling). Then the forward's, dK/dV and dQ kernels'
# elementwise step, from the score GEMMs' wait (the first WARPGROUP.DEPBAR after the first HGMMA)
# to the next shared-memory store of dS (STSM) or GEMM issue: the serial work of a tile between its
# GEMMs, by opcode, all of it and what a full tile runs (the mask pass skipped).
# cuobjdump and the nvdisasm it runs come from PyPI's nvidia-cuda-cuobjdump and nvidia-cuda-nvdisasm
# wheels (pinned), kept in .deps.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-dev}
version=13.5.37
tools=.deps/cuda-sass-tools-$version
if [[ ! -x $tools/cuobjdump || ! -x $tools/nvdisasm ]]; then
  tmp=$(mktemp -d)
  for tool in cuobjdump nvdisasm; do
    python3 -m pip download -q --no-deps --only-binary=:all: nvidia-cuda-$tool==$version -d "$tmp/$tool"
  done
  mkdir -p "$tools"
  python3 - "$tmp" "$tools" <<'PY'
import glob, os, sys, zipfile
for tool in ("cuobjdump", "nvdisasm"):
    whl = glob.glob(os.path.join(sys.argv[1], tool, "*.whl"))[0]
    with zipfile.ZipFile(whl) as z:
        name = next(n for n in z.namelist() if n.endswith("/bin/" + tool))
        with open(os.path.join(sys.argv[2], tool), "wb") as f:
            f.write(z.read(name))
PY
  chmod +x "$tools/cuobjdump" "$tools/nvdisasm"
  rm -rf "$tmp"
fi
export PATH=$PWD/$tools:$PATH
objs=$(find "$build" -path '*sparrow_attention.dir*' -name 'block_attention_sm90*.cu.o' | sort)
[[ -n $objs ]] || { echo "$build: no block_attention_sm90*.cu.o (build sparrow_attention first)"; exit 1; }
python3 scripts/sass_stats.py "$tools/cuobjdump" $objs
