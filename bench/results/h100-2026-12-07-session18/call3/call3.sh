#!/usr/bin/env bash
# Session 18, call 3: the unpadded swizzled dQ sums + the L2-hint experiment.
set -u
t0=$(date +%s)
export HOPPER_SM90_ONLY=1
# Prebuilt here (sm_90a only, MPI off; carried as build-dev/bin): no build on the device unless
# they fail to start, then the script builds as usual.
source scripts/gpu-env.sh
export LD_LIBRARY_PATH=$LD_LIBRARY_PATH:/usr/local/cuda/lib64:/usr/local/cuda/lib
ln -s build-dev build-gpu
if build-gpu/bin/test_gpu --gtest_filter='AttentionSm90Lists.*' > $OUT/prebuilt.log 2>&1; then
  echo "prebuilt binaries run"; export HOPPER_SKIP_BUILD=1
  for b in test_gpu; do cuobjdump --dump-sass build-gpu/bin/$b > /tmp/$b.sass 2>&1
    awk '/Function :/{f=$3} /HGMMA/{h[f]++} /LDL|STL/{l[f]++} END{for(k in h) if(k ~ /dkdv|fwd_kernel/) print "SASS", k, "HGMMA", h[k], "LDL/STL", l[k]+0}' /tmp/$b.sass | head -20; done
else
  echo "prebuilt binaries failed: $(tail -3 $OUT/prebuilt.log)"; rm build-gpu
fi
HOPPER_PARTS="memcheck sass" HOPPER_DEADLINE=300 bash scripts/gpu-hopper-check.sh 2>&1 | tee $OUT/hopper.txt | grep -vE '^ *$'
source scripts/gpu-env.sh
bin=build-gpu/bin
timeout 150 $bin/test_gpu --gtest_filter='AttentionSm90Gpu.Backward*:AttentionSm90Lists.*' > $OUT/test_bwd.log 2>&1
echo "backward tests rc=$? ($(( $(date +%s) - t0 )) s)"; grep -E '^\[  (PASSED|FAILED)|FAILED  \]|INFO|Failure' $OUT/test_bwd.log | head
SPARROW_SM90_BWD_L2_HINTS=kv+sums timeout 60 compute-sanitizer --tool memcheck --print-limit 10 $bin/bench_attention --device cuda \
  --backend block_sparse --pattern bigbird --sparsity 0.5 --seq 1000 --heads 3 --batch 2 --head-dim 128 --block 128 --dtype bf16 \
  --repeat 1 --causal --json > $OUT/memcheck_hints_d128.log 2>&1; echo "memcheck D128 hints rc=$?: $(grep 'ERROR SUMMARY' $OUT/memcheck_hints_d128.log)"
mkdir -p $OUT/ab
OUT=$OUT/ab HOPPER_SKIP_BUILD=1 HOPPER_PARTS=ab HOPPER_DEADLINE=120 HOPPER_AB_VARIANTS="default SPARROW_SM90_BWD_L2_HINTS=kv SPARROW_SM90_BWD_L2_HINTS=sums SPARROW_SM90_BWD_L2_HINTS=kv+sums" \
  HOPPER_AB_CASES="bigbird 65536 16 128 0.90 _,bigbird 65536 16 64 0.90 _,bigbird 262144 16 64 0.90 _,bigbird 65536 16 64 0.99 --causal" \
  bash scripts/gpu-hopper-check.sh 2>&1 | tail -9
echo "ab done ($(( $(date +%s) - t0 )) s)"
mkdir -p $OUT/flex
OUT=$OUT/flex HOPPER_SKIP_BUILD=1 HOPPER_PARTS="bench flex" HOPPER_KERNELS=sm90 HOPPER_SEQS=65536 HOPPER_DENS="0.90 0.95" \
  HOPPER_DEADLINE=$(( 430 - ($(date +%s) - t0) - 50 )) bash scripts/gpu-hopper-check.sh 2>&1 | grep -E "^ *bigbird|out of time|total"
echo "flex done ($(( $(date +%s) - t0 )) s)"
mkdir -p $OUT/ncu
OUT=$OUT/ncu HOPPER_SKIP_BUILD=1 HOPPER_PARTS=ncu HOPPER_NCU_CASES="65536 128 0.90 bigbird" \
  HOPPER_DEADLINE=$(( 460 - ($(date +%s) - t0) )) bash scripts/gpu-hopper-check.sh 2>&1 | grep -vE '^ *$' | tail -30
echo "all: $(( $(date +%s) - t0 )) s"
