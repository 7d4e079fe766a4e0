#!/usr/bin/env bash
# Prepares .deps/ on this (Debian) machine for a GPU host that has CUDA, cuDNN, NCCL and PyTorch
# but no package access: everything the GPU scripts (gpu-check.sh, gpu-hopper-check.sh,
# gpu-dist-check.sh, gpu-study.sh) expect to be carried there.
#   .deps/usr                     Debian's Eigen, yaml-cpp, GoogleTest, Google Benchmark, nlohmann-json,
#                                 CLI11, stb and zlib headers/libraries, unpacked (make-deps.sh)
#   .deps/cudnn_frontend-*, .deps/cutlass-*   the PyPI headers scripts/setup.sh fetches
#   .deps/corpus/gcide.dict.dz    the training tests' and benchmarks' corpus (Debian's dict-gcide)
#   .deps/pylib                   Debian's python3-yaml, for gpu-study.sh
# Then pass to the device run: carry [".deps/usr", ".deps/cudnn_frontend-1.16.0",
# ".deps/cutlass-4.2.0.0", ".deps/corpus", ".deps/pylib"].
#   MAKE_DEPS  the unpacking script (default ../shared/device/make-deps.sh); it starts .deps/ afresh.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
make_deps=${MAKE_DEPS:-$root/../shared/device/make-deps.sh}
[[ -x $make_deps || -f $make_deps ]] || { echo "gpu-deps: no $make_deps (set MAKE_DEPS)" >&2; exit 2; }
# The CMake packages the GPU host lacks, beyond make-deps.sh's own list.
EXTRA_DEBS="nlohmann-json3-dev libcli11-dev libstb-dev libstb0 zlib1g-dev" bash "$make_deps"
SPARROW_SKIP_BUILD=1 bash scripts/setup.sh  # cudnn-frontend and CUTLASS headers into .deps/ (and dict-gcide here)
mkdir -p .deps/corpus
cp /usr/share/dictd/gcide.dict.dz .deps/corpus/
tmp=$(mktemp -d)
(cd "$tmp" && apt-get download python3-yaml > /dev/null)
dpkg -x "$tmp"/python3-yaml_*.deb "$tmp/x"
rm -rf .deps/pylib && mkdir -p .deps/pylib
cp -r "$tmp"/x/usr/lib/python3/dist-packages/* .deps/pylib/
rm -rf "$tmp"
du -sh .deps/* | sed 's/^/gpu-deps: /'
