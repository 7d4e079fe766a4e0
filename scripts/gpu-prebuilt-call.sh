#!/usr/bin/env bash
# A GPU call on binaries built here, so that a lent machine's minutes go to checking and timing,
# not to nvcc (a fresh machine takes ~270 s to start; the sm_90a tests ~150 s; a session has
# ~30 min in all). Two halves:
#   here:   scripts/gpu-prebuilt-call.sh base REV   (optional: REV's bench_attention, sm_90a only, in a
#           worktree under /tmp with this checkout's .deps; prints the binary's path)
#           scripts/gpu-prebuilt-call.sh pack [BASE_BENCH ...]
#           packs build-dev/bin/{test_gpu,bench_attention,attention_layout} (stripped) and, given,
#           other builds' bench_attention (e.g. the last commit measured, then later unmeasured ones;
#           `base` prints such paths) as bench_attention_base1, _base2, … into build-dev/bins.tar.xz
#           (~7 MB, +4 MB a base). Build first, for sm_90a only:
#             cmake -S . -B build-dev -G Ninja -DCMAKE_BUILD_TYPE=Release -DSPARROW_MPI=OFF \
#               -DSPARROW_CUDA_GENCODE=-gencode=arch=compute_90a,code=sm_90a
#             ninja -C build-dev test_gpu bench_attention attention_layout
#   there:  run(command="LIMIT=300 bash scripts/gpu-prebuilt-call.sh",
#               carry=[".deps/usr", "build-dev/bins.tar.xz"])     (.deps/usr: scripts/gpu-deps.sh)
#           racecheck (the kernels' shared-memory hand-offs) and memcheck on small cases, the
#           sm_90a tests (forward first, the shorter), then, with base builds packed, an A/B of them
#           (in the order packed) and this build, ratios to the first (gpu-hopper-check.sh's ab part,
#           the builds alternating within each case), for as long as LIMIT (s) allows.
#           Files go straight under $OUT, so that a call cut short still returns what it wrote.
#   AB_CASES: as HOPPER_AB_CASES ("pattern N H D sparsity causal", comma separated).
#   AB_VARIANTS: as HOPPER_AB_VARIANTS, in place of the packed bases against this build (e.g.
#           "default SPARROW_BLOCK_ATTN_BWD=sm90_deterministic": one pass against two passes).
#   PARTS="sanitize tests ab kernels flex"  (default "sanitize tests ab"); kernels: each kernel's
#           time in one forward + backward (gpu-hopper-check.sh's kernels part, KERNELS_CASES as
#           its HOPPER_KERNELS_CASES); flex: this build against
#           FlexAttention and cuDNN dense on the same layouts (gpu-hopper-check.sh's bench and flex
#           parts, sm_90a kernels only) for FLEX_SEQS (65536), FLEX_DIMS (64 128) and FLEX_DENS
#           (sparsities, 0.90 0.95 0.99), both masks, in whatever LIMIT leaves after the earlier parts.
set -uo pipefail
bins=build-dev/bins.tar.xz
if [[ ${1:-} == base ]]; then
  rev=$(git rev-parse --short "${2:?usage: $0 base REV}") || exit 1
  wt=/tmp/sparrow-base-$rev
  [[ -d $wt ]] || git worktree add --detach "$wt" "$rev" > /dev/null || exit 1
  ln -sfn "$PWD/.deps" "$wt/.deps"
  source "$(dirname "$0")/gpu-env.sh"  # SM90_ONLY
  cmake -S "$wt" -B "$wt/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSPARROW_MPI=OFF "$SM90_ONLY" > "$wt/configure.log" ||
    exit 1
  grep -q "Sparrow: CUTLASS" "$wt/configure.log" || { echo "$wt: no CUTLASS (.deps/cutlass-*)"; exit 1; }
  ninja -C "$wt/build" bench_attention > "$wt/build.log" || { tail -20 "$wt/build.log"; exit 1; }
  echo "$wt/build/bin/bench_attention"
  exit
fi
if [[ ${1:-} == pack ]]; then
  stage=$(mktemp -d) && mkdir "$stage/bin" || exit 1
  for b in test_gpu bench_attention attention_layout; do
    [[ -x build-dev/bin/$b ]] || { echo "build-dev/bin/$b missing: build it first (see the header)"; exit 1; }
    strip -o "$stage/bin/$b" "build-dev/bin/$b" || exit 1
  done
  shift
  for i in $(seq 1 $#); do strip -o "$stage/bin/bench_attention_base$i" "${!i}" || exit 1; done
  tar cJf "$bins" -C "$stage" bin && rm -rf "$stage" && ls -la "$bins"
  exit
fi

t0=$(date +%s)
limit=${LIMIT:-300}
out=${OUT:-$PWD/gpu-out}; mkdir -p "$out"
source "$(dirname "$0")/gpu-env.sh"  # LD_LIBRARY_PATH for .deps/usr
export LD_LIBRARY_PATH=$LD_LIBRARY_PATH:/usr/local/cuda/lib64:/usr/local/cuda/lib
[[ -f $bins ]] || { echo "$bins missing: run '$0 pack' here first and carry it"; exit 1; }
tar xJf "$bins" -C build-dev && ln -sfn build-dev build-gpu || exit 1
bin=build-gpu/bin
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader | tee "$out/card.txt"
rc=0

# The sanitizers (scripts/gpu-sanitize.sh) and the sm_90a tests (in shards) run side by side:
# all are mostly CPU (instrumentation, CPU references) on a 16-core host, and ~150 s one
# after another is half of what a short lease leaves.
parts=${PARTS:-sanitize tests ab}
jobs_=()
[[ $parts == *sanitize* ]] && { "$(dirname "$0")/gpu-sanitize.sh" $bin/bench_attention "$out/sanitizers.txt" &
  jobs_+=("$!:sanitizers"); }
if [[ $parts == *tests* ]]; then
  # gtest's shards (each process runs every SHARDS-th case): the backward's CPU references dominate.
  for s in 0 1 2 3; do
    GTEST_TOTAL_SHARDS=4 GTEST_SHARD_INDEX=$s timeout 300 $bin/test_gpu --gtest_filter='AttentionSm90Gpu.Backward*' \
      > "$out/tests_backward_$s.log" 2>&1 & jobs_+=("$!:backward tests, shard $s")
  done
  timeout 300 $bin/test_gpu --gtest_filter='AttentionSm90Gpu.Forward*:AttentionSm90Lists.*:AdaptiveSelectGpu.*' \
    > "$out/tests_forward.log" 2>&1 & jobs_+=("$!:forward tests")
fi
for j in "${jobs_[@]}"; do
  wait "${j%%:*}" || rc=1
  echo "${j#*:} done, rc=$rc ($(( $(date +%s) - t0 )) s)"
done
[[ $parts == *sanitize* ]] && cat "$out/sanitizers.txt"
[[ $parts == *tests* ]] && cat "$out"/tests_*.log > "$out/tests.log" && rm "$out"/tests_*.log &&
  grep -E '^\[  (PASSED|FAILED) |INFO|Failure' "$out/tests.log" | head -20

left=$(( limit - ($(date +%s) - t0) - 10 ))
bases=$(ls $bin/bench_attention_base* 2>/dev/null | sort -V | sed 's/^/BIN=/' | tr '\n' ' ')
if [[ $parts == *ab* && -n ${AB_VARIANTS:-$bases} && $left -gt 30 ]]; then
  echo "A/B of ${AB_VARIANTS:-${bases}default}, $left s left"
  OUT=$out HOPPER_SKIP_BUILD=1 HOPPER_DEADLINE=$left HOPPER_PARTS=ab \
    HOPPER_AB_VARIANTS="${AB_VARIANTS:-${bases}default}" \
    HOPPER_AB_CASES="${AB_CASES:-bigbird 65536 16 128 0.90 _,bigbird 65536 16 64 0.90 _,bigbird 65536 16 64 0.99 --causal,bigbird 65536 16 128 0.90 --causal,local 65536 16 64 0.99 _,bigbird 65536 16 128 0.95 --causal}" \
    "$(dirname "$0")/gpu-hopper-check.sh" 2>&1 | grep -vE '^NVIDIA|^WARNING|^grep:|^build:' | tee "$out/ab.txt"
fi
left=$(( limit - ($(date +%s) - t0) - 10 ))
if [[ $parts == *kernels* && $left -gt 60 ]]; then
  echo "each kernel's time, $left s left"
  OUT=$out HOPPER_SKIP_BUILD=1 HOPPER_DEADLINE=$left HOPPER_PARTS=kernels HOPPER_KERNELS_CASES="${KERNELS_CASES:-}" \
    "$(dirname "$0")/gpu-hopper-check.sh" 2>&1 | grep -vE '^NVIDIA|^WARNING|^grep:|^build:' | tee "$out/kernels.txt"
fi
left=$(( limit - ($(date +%s) - t0) - 10 ))
if [[ $parts == *flex* && $left -gt 60 ]]; then
  echo "against Flex and cuDNN dense, $left s left"
  OUT=$out HOPPER_SKIP_BUILD=1 HOPPER_DEADLINE=$left HOPPER_PARTS="bench flex" HOPPER_KERNELS=sm90 \
    HOPPER_SEQS="${FLEX_SEQS:-65536}" HOPPER_DIMS="${FLEX_DIMS:-64 128}" HOPPER_DENS="${FLEX_DENS:-0.90 0.95 0.99}" \
    "$(dirname "$0")/gpu-hopper-check.sh" 2>&1 | grep -vE '^NVIDIA|^WARNING|^grep:|^build:' | tee "$out/flex.txt"
fi
echo "total: $(( $(date +%s) - t0 )) s, rc=$rc"
exit $rc
