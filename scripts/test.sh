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
#   build-sanitize/  clang, SPARROW_CUDA=OFF, AddressSanitizer + UndefinedBehaviorSanitizer on
#                  every target (SPARROW_SANITIZE): the whole suite again, where a memory error,
#                  a leak or undefined behaviour fails the test; plus the libFuzzer targets of
#                  tests/fuzz/ (SPARROW_FUZZ, ctest label fuzz), each for a bounded time from its
#                  seed corpus (docs/FUZZING.md)
#
# After the default configuration builds, scripts/examples.sh installs it into a temporary prefix
# and builds and runs examples/ against that package (see run_examples below). Last,
# scripts/check-format.sh checks every C++/CUDA source against .clang-format (one test).
#
# The last line is the total over every configuration: "[test] total: N passed, N failed, N
# skipped" (a configuration that fails to build counts as one failure).
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
# Sanitizer settings (read only by the sanitized binaries, including the `train` processes the
# CLI tests start). Leaks are errors; UB already stops the program (-fno-sanitize-recover).
# OpenMPI keeps allocations past MPI_Finalize by design; scripts/lsan-openmpi.supp suppresses
# leaks whose stack passes through its libraries. Those libraries have no frame pointers, so
# allocation stacks are taken with the full unwinder (fast_unwind_on_malloc=0) to reach them.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1:fast_unwind_on_malloc=0}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$root/scripts/lsan-openmpi.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
if [[ -z "${ASAN_SYMBOLIZER_PATH:-}" && -x /usr/lib/llvm-14/bin/llvm-symbolizer ]]; then
  export ASAN_SYMBOLIZER_PATH=/usr/lib/llvm-14/bin/llvm-symbolizer  # file:line in reports
fi

failed=()
summaries=()
total_passed=0 total_failed=0 total_skipped=0
# run_config NAME BUILD_DIR [CMAKE ARGS...]: set-up/build into BUILD_DIR, then its tests.
run_config() {
  local name=$1 dir=$2
  shift 2
  echo "[test] === configuration: $name ($dir) ==="
  local start=$SECONDS
  if ! SPARROW_BUILD_DIR=$dir SPARROW_CMAKE_ARGS="$*" bash scripts/setup.sh; then
    failed+=("$name (build)")
    summaries+=("$name: build failed")
    total_failed=$((total_failed + 1))
    return
  fi
  local log="$dir/ctest.log"
  ctest --test-dir "$dir" --output-on-failure --timeout 900 -j "$(nproc)" ${CTEST_ARGS:-} 2>&1 | tee "$log" ||
    failed+=("$name (tests)")
  # ctest counts a skipped test as passed: "100% tests passed, 0 tests failed out of 311".
  local all fail skip
  all=$(sed -n 's/.* tests failed out of \([0-9]*\).*/\1/p' "$log" | tail -1)
  fail=$(sed -n 's/.*, \([0-9]*\) tests failed out of .*/\1/p' "$log" | tail -1)
  skip=$(grep -c '^ *[0-9]*/[0-9]* Test *#[0-9]*: .*\*\*\*Skipped' "$log")
  all=${all:-0} fail=${fail:-0}
  if ((all == 0)); then  # no summary line: ctest itself failed
    fail=1
  fi
  total_passed=$((total_passed + all - fail - skip))
  total_failed=$((total_failed + fail))
  total_skipped=$((total_skipped + skip))
  summaries+=("$name: $((all - fail - skip)) passed, $fail failed, $skip skipped ($((SECONDS - start)) s with the build)")
}

# run_examples BUILD_DIR: the installed package and examples/ built and run against it
# (scripts/examples.sh); each of its checks counts as one test in the total.
run_examples() {
  local dir=$1 log="$1/examples.log" start=$SECONDS p f
  echo "[test] === installed package and examples/ ($dir) ==="
  bash scripts/examples.sh "$dir" 2>&1 | tee "$log" || failed+=("examples")
  p=$(sed -n 's/^\[examples\] total: \([0-9]*\) passed, [0-9]* failed$/\1/p' "$log")
  f=$(sed -n 's/^\[examples\] total: [0-9]* passed, \([0-9]*\) failed$/\1/p' "$log")
  if [[ -z $p || -z $f ]]; then  # no total line: the script itself failed
    p=0 f=1
  fi
  total_passed=$((total_passed + p))
  total_failed=$((total_failed + f))
  summaries+=("examples: $p passed, $f failed ($((SECONDS - start)) s)")
}

run_config default "$build_dir"
if [[ " ${failed[*]} " != *" default (build) "* ]]; then
  run_examples "$build_dir"
fi
if grep -qx 'SPARROW_BUILT_WITH_CUDA:INTERNAL=ON' "$build_dir/CMakeCache.txt" 2>/dev/null; then
  run_config "cpu-only" build-nocuda -DSPARROW_CUDA=OFF
fi
run_config sanitize build-sanitize -DSPARROW_CUDA=OFF -DCMAKE_CXX_COMPILER=clang++-14 \
  -DSPARROW_SANITIZE=address,undefined -DSPARROW_FUZZ=ON

echo "[test] === format (.clang-format) ==="
if bash scripts/check-format.sh; then
  total_passed=$((total_passed + 1))
  summaries+=("format: 1 passed")
else
  total_failed=$((total_failed + 1))
  failed+=("format")
  summaries+=("format: 1 failed")
fi

for line in "${summaries[@]}"; do echo "[test] $line"; done
if ((${#failed[@]})); then
  echo "[test] FAILED: ${failed[*]}"
else
  echo "[test] every configuration built and passed"
fi
echo "[test] total: $total_passed passed, $total_failed failed, $total_skipped skipped"
((${#failed[@]} == 0))
