#!/usr/bin/env bash
# The long-document corpus (opt-in): C sources and docs of Debian's linux-source-6.1, one
# document per file (train/data/corpus.h reads a folder so), for studies of how far back a model
# looks. Not part of the main job's or CI's data: run it yourself, or through the set-up with
#   SPARROW_CORPUS=linux bash scripts/setup.sh
# then train with configs/linux_src.yaml.
#
# The package is one 139 MB .deb holding a 135 MB .tar.xz of the whole tree (~1.3 GB unpacked);
# we fetch it with `apt-get download` (no root, nothing installed system-wide), unpack only the
# .c/.h/.rst files of a few subtrees, keep them in path order up to a byte cap, and delete the .deb.
# The corpus reader concatenates files in path order and holds out the trailing files
# (data.val_fraction of the bytes) for validation: whole files the model never trains on.
#   SPARROW_LINUX_VERSION   package version (default: the pinned one below; if the archive no
#                           longer carries it, the candidate version is taken with a warning)
#   SPARROW_LINUX_MB        byte cap in MiB (default 48)
#   SPARROW_LINUX_DIR       output folder (default: data/linux-6.1)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
pkg=linux-source-6.1
version=${SPARROW_LINUX_VERSION:-6.1.192-3}
cap_mb=${SPARROW_LINUX_MB:-48}
out=${SPARROW_LINUX_DIR:-data/linux-6.1}
# Subtrees with long, structured files: the core kernel, memory management, the library, two
# file systems, and the prose of two documentation books.
subtrees=(Documentation/core-api Documentation/filesystems fs/ext4 fs/btrfs kernel lib mm)
exts=(c h rst)
log() { echo "[linux-corpus] $*"; }

manifest="$out.manifest"  # written last: its presence means the folder is complete
if [[ -f "$manifest" && -d "$out" ]]; then
  log "already present: $out ($(head -1 "$manifest"))"
  exit 0
fi

if ! apt-cache madison "$pkg" | awk '{print $3}' | grep -qx "$version"; then
  candidate=$(apt-cache policy "$pkg" | awk '/Candidate:/ {print $2}')
  [[ -z "$candidate" || "$candidate" == "(none)" ]] && { echo "[linux-corpus] $pkg is not in this system's apt sources (run apt-get update, or add Debian bookworm)" >&2; exit 1; }
  log "warning: $pkg=$version is not available here; taking the candidate $candidate"
  version=$candidate
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sparrow-linux.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
log "downloading $pkg=$version (about 139 MB)"
(cd "$tmp" && apt-get download -q "$pkg=$version" >/dev/null)
deb=$(ls "$tmp"/*.deb)
members=()
for s in "${subtrees[@]}"; do members+=("$pkg/$s"); done
log "unpacking ${subtrees[*]}"
dpkg-deb --fsys-tarfile "$deb" | tar -xO "./usr/src/$pkg.tar.xz" | tar -xJ -C "$tmp" "${members[@]}"
rm -f "$deb"

# Only the sources and the prose (no Makefiles, Kconfig, scripts, images).
find_exts=()
for e in "${exts[@]}"; do find_exts+=(${find_exts[0]+-o} -name "*.$e"); done
# Keep files in the reader's order (byte-wise path order) until the cap.
rm -rf "$out.tmp" && mkdir -p "$out.tmp"
cap=$((cap_mb * 1024 * 1024))
total=0 files=0
while IFS= read -r rel; do
  size=$(stat -c %s "$tmp/$pkg/$rel")
  ((total + size > cap)) && break
  mkdir -p "$out.tmp/$(dirname "$rel")"
  mv "$tmp/$pkg/$rel" "$out.tmp/$rel"
  total=$((total + size)) files=$((files + 1))
done < <(cd "$tmp/$pkg" && find . -type f \( "${find_exts[@]}" \) -printf '%P\n' | LC_ALL=C sort)
rm -rf "$out" && mv "$out.tmp" "$out"
{
  echo "$pkg $version: $files files, $total bytes (cap ${cap_mb} MiB)"
  echo "subtrees: ${subtrees[*]}; extensions: ${exts[*]}"
} > "$manifest"
log "$out: $files files, $((total / 1024 / 1024)) MiB ($manifest)"
