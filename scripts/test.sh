#!/usr/bin/env bash
# Sparrow's whole test suite: set-up (packages, build), then every CTest suite of every build
# configuration this machine can make. GPU suites skip with a reason where no GPU is visible; the
# MPI suite runs under mpirun -np 2 and 4.
#
# Configurations, each in its own build folder:
#   build/         the default (SPARROW_CUDA=AUTO): with CUDA where nvcc is found — the one the
#                  README's main job uses
#   build-nocuda/  SPARROW_CUDA=OFF, only where the default has CUDA: what most users' machines
#                  get, built here too so that neither configuration can rot unseen
#
#   SPARROW_BUILD_DIR  the default build folder (default: build)
#   CTEST_ARGS         extra ctest arguments (e.g. "-L attention")
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build_dir=${SPARROW_BUILD_DIR:-build}
# ctest runs one suite per core; each suite then uses one OpenMP thread (threads spinning on
# more threads than cores cost far more than they give).
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

failed=()
# run_config NAME BUILD_DIR [CMAKE ARGS...]: set-up/build into BUILD_DIR, then its tests.
run_config() {
  local name=$1 dir=$2
  shift 2
  echo "[test] === configuration: $name ($dir) ==="
  if ! SPARROW_BUILD_DIR=$dir SPARROW_CMAKE_ARGS="$*" bash scripts/setup.sh; then
    failed+=("$name (build)")
    return
  fi
  ctest --test-dir "$dir" --output-on-failure --timeout 900 -j "$(nproc)" ${CTEST_ARGS:-} || failed+=("$name (tests)")
}

run_config default "$build_dir"
if grep -qx 'SPARROW_BUILT_WITH_CUDA:INTERNAL=ON' "$build_dir/CMakeCache.txt" 2>/dev/null; then
  run_config "cpu-only" build-nocuda -DSPARROW_CUDA=OFF
fi

if ((${#failed[@]})); then
  echo "[test] FAILED: ${failed[*]}"
  exit 1
fi
echo "[test] every configuration built and passed"
