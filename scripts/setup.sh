#!/usr/bin/env bash
# Sparrow set-up: installs what is missing (Debian packages pinned in scripts/deps.txt, the
# cudnn-frontend headers when a CUDA toolkit is present), configures and builds into build/.
# Idempotent: a second run with nothing missing only re-runs the (incremental) build.
#   SPARROW_BUILD_DIR  build folder (default: build)
#   SPARROW_JOBS       parallel build jobs (default: nproc)
#   SPARROW_SKIP_BUILD=1  install only
#   SPARROW_CORPUS=linux  also fetch the opt-in long-document corpus (scripts/get-linux-corpus.sh:
#                         a 139 MB download; configs/linux_src.yaml reads it)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build_dir=${SPARROW_BUILD_DIR:-build}
# GNU nproc honours OMP_NUM_THREADS, which scripts/test.sh sets to 1 for the tests: count the
# cores without it, or the build would run one compiler at a time.
jobs=${SPARROW_JOBS:-$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)}
log() { echo "[setup] $*"; }

# --- Debian packages -------------------------------------------------------------------
missing=()
while read -r spec; do
  [[ -z "$spec" || "$spec" == \#* ]] && continue
  name=${spec%%=*}
  dpkg-query -W -f='${Status}' "$name" 2>/dev/null | grep -q "install ok installed" || missing+=("$spec")
done < scripts/deps.txt
if ((${#missing[@]})); then
  log "installing: ${missing[*]}"
  sudo_cmd=""; [[ $(id -u) -ne 0 ]] && sudo_cmd="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo_cmd apt-get update -qq
  to_install=()
  for spec in "${missing[@]}"; do
    name=${spec%%=*}
    if [[ "$spec" == *=* ]] && ! apt-cache madison "$name" | awk '{print $3}' | grep -qx "${spec#*=}"; then
      log "warning: $spec is not available here; installing the candidate of $name"
      to_install+=("$name")
    else
      to_install+=("$spec")
    fi
  done
  $sudo_cmd apt-get install -y -qq --no-install-recommends "${to_install[@]}" >/dev/null
else
  log "Debian packages: all present"
fi

# --- cudnn-frontend headers (only where a CUDA toolkit exists) ---------------------------
# Header-only C++ API over cuDNN's graph backend, shipped in PyPI's nvidia-cudnn-frontend wheel.
CUDNN_FE_VERSION=1.16.0
fe_dir="$root/.deps/cudnn_frontend-$CUDNN_FE_VERSION"
if command -v nvcc >/dev/null 2>&1 || [[ -x /usr/local/cuda/bin/nvcc ]]; then
  if [[ ! -f "$fe_dir/include/cudnn_frontend.h" ]]; then
    log "fetching cudnn-frontend $CUDNN_FE_VERSION headers"
    tmp=$(mktemp -d)
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 \
      --platform manylinux_2_28_x86_64 nvidia-cudnn-frontend==$CUDNN_FE_VERSION -d "$tmp"
    mkdir -p "$fe_dir"
    python3 - "$tmp" "$fe_dir" <<'PY'
import sys, zipfile, glob, os
whl = glob.glob(os.path.join(sys.argv[1], "*.whl"))[0]
with zipfile.ZipFile(whl) as z:
    for n in z.namelist():
        if n.startswith("include/") and not n.endswith("/"):
            z.extract(n, sys.argv[2])
PY
    rm -rf "$tmp"
  fi
fi

# --- CUTLASS/CuTe headers (only where a CUDA toolkit exists) -----------------------------
# Header-only (BSD-3), for the sm_90a attention kernels; PyPI's nvidia-cutlass wheel carries the
# C++ headers under cutlass_library/source/include/.
CUTLASS_VERSION=4.2.0.0
cutlass_dir="$root/.deps/cutlass-$CUTLASS_VERSION"
if command -v nvcc >/dev/null 2>&1 || [[ -x /usr/local/cuda/bin/nvcc ]]; then
  if [[ ! -f "$cutlass_dir/include/cute/tensor.hpp" ]]; then
    log "fetching CUTLASS $CUTLASS_VERSION headers"
    tmp=$(mktemp -d)
    python3 -m pip download -q --no-deps --only-binary=:all: nvidia-cutlass==$CUTLASS_VERSION -d "$tmp"
    mkdir -p "$cutlass_dir/include"
    python3 - "$tmp" "$cutlass_dir/include" <<'PY'
import sys, zipfile, glob, os
whl = glob.glob(os.path.join(sys.argv[1], "*.whl"))[0]
pre = "cutlass_library/source/include/"
with zipfile.ZipFile(whl) as z:
    for n in z.namelist():
        if n.startswith(pre) and not n.endswith("/"):
            dst = os.path.join(sys.argv[2], n[len(pre):])
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            with z.open(n) as src, open(dst, "wb") as out:
                out.write(src.read())
PY
    rm -rf "$tmp"
  fi
fi

# --- opt-in data: the long-document corpus (never part of the main job's or CI's path) -------
case "${SPARROW_CORPUS:-}" in
  "") ;;
  linux) bash scripts/get-linux-corpus.sh ;;
  *) echo "[setup] SPARROW_CORPUS: expected linux (or unset), got '${SPARROW_CORPUS}'" >&2; exit 2 ;;
esac

[[ "${SPARROW_SKIP_BUILD:-0}" == 1 ]] && exit 0

# --- configure and build -----------------------------------------------------------------
gen=(); command -v ninja >/dev/null && gen=(-G Ninja)
if [[ ! -f "$build_dir/CMakeCache.txt" ]]; then
  cmake -S . -B "$build_dir" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release ${SPARROW_CMAKE_ARGS:-}
fi
cmake --build "$build_dir" -j "$jobs"
log "built into $build_dir/bin"
