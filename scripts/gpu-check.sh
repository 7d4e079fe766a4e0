#!/usr/bin/env bash
# One call on a GPU host: build with CUDA, run the GPU suites (and optionally all suites), then
# the GPU benchmarks; logs and JSON go to $OUT (or ./gpu-out). See ../shared/device/README.md:
# the host has CUDA/cuDNN/NCCL but no Eigen/yaml-cpp/GTest, so carry .deps/ (scripts/gpu-deps.sh).
#   GPU_CHECK_TESTS=all|gpu|none   (default gpu)    GPU_CHECK_BENCH=1 runs bench/gpu_bench.sh
set -uo pipefail
out=${OUT:-$PWD/gpu-out}; mkdir -p "$out"
source "$(dirname "$0")/gpu-env.sh"  # D, L, LD_LIBRARY_PATH, SPARROW_TEST_CORPUS
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/card.txt"
t0=$(date +%s)
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH=$D -DCMAKE_LIBRARY_PATH=$L \
  -DSPARROW_MPI=OFF > "$out/configure.log" 2>&1 || { tail -30 "$out/configure.log"; exit 1; }
cmake --build build-gpu -j 16 -- -k 0 > "$out/build.log" 2>&1 || { grep -E 'error|FAILED' "$out/build.log" | head -40; exit 1; }
echo "build: $(( $(date +%s) - t0 )) s"
case "${GPU_CHECK_TESTS:-gpu}" in
  all) ctest --test-dir build-gpu --output-on-failure --timeout 600 -j 8 > "$out/ctest.log" 2>&1; rc=$? ;;
  gpu) ctest --test-dir build-gpu --output-on-failure --timeout 600 -L gpu > "$out/ctest.log" 2>&1; rc=$? ;;
  *) rc=0 ;;
esac
grep -E 'tests passed|FAILED|Failed|\*\*\*' "$out/ctest.log" | head -40
if [[ "${GPU_CHECK_BENCH:-0}" == 1 ]]; then bash bench/gpu_bench.sh "$out"; fi
exit $rc
