#!/usr/bin/env bash
# Session 18, call 1: build, sm_90a tests, sanitizers (default and split plans), SASS, rest of test_gpu.
set -u
export HOPPER_DEADLINE=560
HOPPER_SM90_ONLY=1 HOPPER_PARTS="test memcheck sass" bash scripts/gpu-hopper-check.sh 2>&1 | tee $OUT/hopper.txt
mkdir -p $OUT/split
OUT=$OUT/split SPARROW_SM90_SPLIT=1 SPARROW_SM90_PERSISTENT_CTAS=2 HOPPER_SKIP_BUILD=1 HOPPER_PARTS="memcheck" HOPPER_DEADLINE=200 \
  bash scripts/gpu-hopper-check.sh 2>&1 | grep -E "rc=|total" | tee $OUT/split.txt
source scripts/gpu-env.sh
timeout 200 build-gpu/bin/test_gpu --gtest_filter='-AttentionSm90Gpu.*:AttentionSm90Lists.*:AttentionGpu.*:AdaptiveSelectGpu.*' > $OUT/test_gpu_rest.log 2>&1
echo "test_gpu rest rc=$?"; grep -E '^\[  (PASSED|FAILED)|FAILED  \]|tests ran' $OUT/test_gpu_rest.log | tail -15
