#!/usr/bin/env bash
# Checks that every C++/CUDA source of the project is formatted by .clang-format (clang-format 14,
# Debian's clang-format-14, pinned in scripts/deps.txt). Lists the files that are not and exits 1;
# `scripts/check-format.sh --fix` formats them in place.
set -uo pipefail
cd "$(dirname "$0")/.."
fmt=$(command -v clang-format-14 || true)
if [[ -z $fmt ]]; then
  echo "[format] clang-format-14 not found (scripts/setup.sh installs it from scripts/deps.txt)" >&2
  exit 2
fi
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  mapfile -t files < <(git ls-files '*.cpp' '*.h' '*.cu' '*.cuh' | grep -v '^tests/fuzz/corpus/')
else
  mapfile -t files < <(find . -path ./tests/fuzz/corpus -prune -o -path './build*' -prune -o -path ./.deps -prune -o \
                         -type f \( -name '*.cpp' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' \) -print)
fi
if [[ ${1:-} == --fix ]]; then
  "$fmt" -i "${files[@]}"
  exit 0
fi
bad=()
for f in "${files[@]}"; do
  "$fmt" --dry-run -Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if ((${#bad[@]})); then
  echo "[format] ${#bad[@]} of ${#files[@]} files differ from .clang-format (fix: scripts/check-format.sh --fix):"
  printf '  %s\n' "${bad[@]}"
  exit 1
fi
echo "[format] ${#files[@]} files formatted"
