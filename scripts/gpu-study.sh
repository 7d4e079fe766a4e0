#!/usr/bin/env bash
# One call on a GPU host for the studies of configs/study/ (issue 11; bench/STUDY.md): build the
# programs, unpack the linux-source corpus, run each study file's runs one at a time (scripts/sweep
# --only) until a deadline, write each study's table and plot (sweep --report), and archive the run
# folders without weights into $OUT/runs.tar.gz (metrics, eval.json, profiles, checkpoint
# state.json: `scripts/sweep FILE --report` works on the unpacked copy). Resumable on a warm host:
# finished runs are skipped.
#   GPU_STUDIES="configs/study/linux_4k.yaml configs/study/needle_4k.yaml"   (default: those two; also
#   needle_4k_long.yaml, recall_4k.yaml)
#   GPU_STUDY_RUNS="configs/study/linux_4k.yaml:dense …"   (default: every run of every study, in order)
#   GPU_STUDY_DEADLINE=s   start no run after this many seconds (default 540); a run started
#                          before it is cut at the deadline + 30 s (resume it in the next call)
# Carry .deps/usr, .deps/cudnn_frontend-*, .deps/cutlass-*, .deps/pylib (Debian's python3-yaml
# package's yaml/ folder, for hosts without PyYAML) and data/linux-6.1.tar.xz
# (tar -cJf data/linux-6.1.tar.xz -C data linux-6.1: 5.4 MB, where the folder is 34 MB).
set -uo pipefail
out=${OUT:-$PWD/gpu-out}; mkdir -p "$out"
t0=$(date +%s)
deadline=${GPU_STUDY_DEADLINE:-540}
left() { echo $(( deadline - ($(date +%s) - t0) )); }
source "$(dirname "$0")/gpu-env.sh"  # D, L, LD_LIBRARY_PATH, SPARROW_TEST_CORPUS, SM90_ONLY
# scripts/sweep reads YAML with PyYAML; hosts without it get Debian's pure-Python copy from .deps.
python3 -c 'import yaml' 2>/dev/null || export PYTHONPATH=$PWD/.deps/pylib${PYTHONPATH:+:$PYTHONPATH}
python3 -c 'import yaml' || { echo "no PyYAML (carry .deps/pylib)"; exit 1; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/card.txt"
# Only the linux-source studies read it: the synthetic ones (needle, recall) run without the archive.
if [[ ! -d data/linux-6.1 ]]; then
  if [[ -f data/linux-6.1.tar.xz ]]; then tar -xJf data/linux-6.1.tar.xz -C data || exit 1
  else echo "no data/linux-6.1.tar.xz carried: the linux-source studies will fail"; fi
fi
if [[ ! -f build-gpu/build.ninja ]]; then
  cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH=$D -DCMAKE_LIBRARY_PATH=$L \
    -DSPARROW_MPI=OFF "$SM90_ONLY" > "$out/configure.log" 2>&1 || { tail -30 "$out/configure.log"; exit 1; }
fi
ninja -C build-gpu -j 16 train eval plot sample > "$out/build.log" 2>&1 || { grep -E 'error|FAILED' "$out/build.log" | head -40; exit 1; }
echo "build: $(( $(date +%s) - t0 )) s"
export SPARROW_BUILD_DIR=$PWD/build-gpu
studies=${GPU_STUDIES:-configs/study/linux_4k.yaml configs/study/needle_4k.yaml}
# The runs in order: GPU_STUDY_RUNS="FILE:NAME …" (e.g. every study's first runs before any seeds),
# else every run of each study in turn.
items=${GPU_STUDY_RUNS:-$(python3 -c "import sys, yaml
print(' '.join(f'{f}:{n}' for f in sys.argv[1:] for n in yaml.safe_load(open(f))['runs']))" $studies)}
for item in $items; do
  study=${item%%:*} name=${item#*:}
  [[ $(left) -gt 0 ]] || { echo "deadline: $item and later runs not started"; break; }
  s=$(date +%s)
  timeout $(( $(left) + 30 )) python3 scripts/sweep "$study" --only "$name" >> "$out/sweep.log" 2>&1 ||
    echo "$item: exit $? (see sweep.log)"
  echo "$item: $(( $(date +%s) - s )) s"
done
dirs=""
for study in $studies; do
  python3 scripts/sweep "$study" --report >> "$out/sweep.log" 2>&1 || echo "$study: no report"
  dir=$(python3 -c "import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))['out'])" "$study")
  [[ -f $dir/study.md ]] && cat "$dir/study.md"
  dirs+=" $dir"
done
# One archive: $OUT brings back files a few folders deep only.
tar -czf "$out/runs.tar.gz" --exclude='*.safetensors' $dirs
echo "total: $(( $(date +%s) - t0 )) s"
