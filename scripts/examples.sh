#!/usr/bin/env bash
# The installed package, as a user would take it: installs BUILD_DIR into a fresh temporary
# prefix, moves the prefix elsewhere (the package must be relocatable) and checks that no
# installed CMake file names the build or source folder, then configures, builds (-j2) and runs
# each examples/<name>/ as a standalone CMake project with CMAKE_PREFIX_PATH at the moved prefix.
#
#   bash scripts/examples.sh [BUILD_DIR]      (default: build; it must be built already)
#
# One line per check, "[examples] PASS <name> (...)" or "[examples] FAIL <name>: <stage>", then
# "[examples] total: P passed, F failed" (scripts/test.sh adds these to its total). Exit status 0
# only when every check passed. Logs stay in the temporary folder named on failure.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build_dir=$(cd "${1:-build}" && pwd) || { echo "[examples] FAIL install: no build folder ${1:-build}"; echo "[examples] total: 0 passed, 1 failed"; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/sparrow-examples.XXXXXX")
passed=0 failed=0
pass() { echo "[examples] PASS $*"; passed=$((passed + 1)); }
fail() { echo "[examples] FAIL $* (logs: $tmp)"; failed=$((failed + 1)); }
finish() {
  echo "[examples] total: $passed passed, $failed failed"
  ((failed == 0)) && rm -rf "$tmp"
  ((failed == 0))
  exit
}

# The same compiler (and launcher) as the installed build: a C++ ABI to match.
cache() { sed -n "s/^$1:[A-Z]*=//p" "$build_dir/CMakeCache.txt"; }
cxx=$(cache CMAKE_CXX_COMPILER)
launcher=$(cache CMAKE_CXX_COMPILER_LAUNCHER)
gen=(); command -v ninja >/dev/null && gen=(-G Ninja)

# 1. Install, move, look for absolute paths of this machine's build in the package files.
start=$SECONDS
if ! cmake --install "$build_dir" --prefix "$tmp/installed" >"$tmp/install.log" 2>&1; then
  fail "install: cmake --install $build_dir failed"
  finish
fi
mv "$tmp/installed" "$tmp/prefix"
if leaks=$(grep -rlF -e "$build_dir" -e "$root" -e "$tmp/installed" "$tmp/prefix/lib/cmake/Sparrow"); then
  fail "relocatable: installed CMake files name build paths: $leaks"
else
  pass "install + relocatable ($(find "$tmp/prefix" -type f | wc -l) files, moved prefix, no build paths; $((SECONDS - start)) s)"
fi

# 2. Each example: configure, build and run against the moved prefix.
for dir in examples/*/; do
  name=$(basename "$dir")
  [[ -f $dir/CMakeLists.txt ]] || continue
  start=$SECONDS
  b="$tmp/build-$name"
  if ! cmake -S "$dir" -B "$b" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$tmp/prefix" \
       ${cxx:+-DCMAKE_CXX_COMPILER="$cxx"} ${launcher:+-DCMAKE_CXX_COMPILER_LAUNCHER="$launcher"} \
       >"$b.configure.log" 2>&1; then
    fail "$name: configure (find_package(Sparrow)); $(tail -5 "$b.configure.log" | tr '\n' ' ')"
    continue
  fi
  if ! cmake --build "$b" -j 2 >"$b.build.log" 2>&1; then
    fail "$name: build; $(grep -m3 -E 'error|undefined' "$b.build.log" | tr '\n' ' ')"
    continue
  fi
  if ! (cd "$b" && timeout 300 "./$name") >"$b.run.log" 2>&1; then
    fail "$name: run; $(tail -3 "$b.run.log" | tr '\n' ' ')"
    continue
  fi
  sed "s/^/[examples]   /" "$b.run.log" | tail -4
  pass "$name ($((SECONDS - start)) s: configure, build, run)"
done
finish
