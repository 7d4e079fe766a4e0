#!/usr/bin/env bash
# Sparrow's whole test suite: set-up (packages, build), then every CTest suite. GPU suites skip
# with a reason where no GPU is visible; the MPI suite runs under mpirun -np 2 and 4.
#   SPARROW_BUILD_DIR  build folder (default: build)
#   CTEST_ARGS         extra ctest arguments (e.g. "-L attention")
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/setup.sh
build_dir=${SPARROW_BUILD_DIR:-build}
# ctest runs one suite per core; each suite then uses one OpenMP thread (threads spinning on
# more threads than cores cost far more than they give).
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
ctest --test-dir "$build_dir" --output-on-failure --timeout 900 -j "$(nproc)" ${CTEST_ARGS:-}
