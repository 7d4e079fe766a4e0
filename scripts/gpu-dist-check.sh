#!/usr/bin/env bash
# One call on a multi-GPU host (nvidia-h100-x2/x4/x8, nvidia-h200-x2/x4/x8) for issue 14: build
# with MPI and NCCL, the multi-process suites on the GPUs, then the scaling runs of bench/gpt12.yaml.
# Logs, metrics and a summary under $OUT (or ./gpu-out); the summary table is printed last.
#
#   1. tests: test_dist under mpirun -np 2 and -np G (G = GPUs, at most 4): every backend's ring
#      attention on one GPU per rank over NCCL equals the one-process run (BackendsRing/cuda);
#      TrainDistributed.* with SPARROW_DIST_TRAIN_DEVICE=cuda: data-, context- and both-parallel
#      tiny.yaml runs equal the one-GPU run, repeat bit for bit, ZeRO-1, resume at another count.
#   2. dp: bench/gpt12.yaml at 4K × 16 sequences per GPU on 1, 2, … G GPUs: tokens/s and the
#      scaling efficiency tokens/s(P) / (P · tokens/s(1)).
#   3. cp: the longest sequence that trains (2 steps, batch 1, recompute on) on 1, 2, … G GPUs
#      with context parallelism, for dense and bigbird at 95 % and 99 %: doubling from 64K.
#   4. weak: ring attention at fixed tokens per GPU (GPU_DIST_WEAK_TOKENS, default 65536): the
#      step time and tokens/s per GPU on 1 … G GPUs, local 95 % and dense.
#
#   GPU_DIST_PARTS="test dp cp weak"   (default all)      GPU_DIST_DEADLINE=s (default 560)
#   GPU_DIST_MAX_SEQ=8388608           the cp search's ceiling
# Carry .deps/usr, .deps/cudnn_frontend-*, .deps/cutlass-* and .deps/corpus (the training tests'
# gcide copy). The host's OpenMPI and NCCL are used; NVLink multicast stays off (NCCL_NVLS_ENABLE=0).
set -uo pipefail
out=${OUT:-$PWD/gpu-out}; mkdir -p "$out"
t0=$(date +%s)
deadline=${GPU_DIST_DEADLINE:-560}
left() { echo $(( deadline - ($(date +%s) - t0) )); }
parts=${GPU_DIST_PARTS:-test dp cp weak}
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
source "$(dirname "$0")/gpu-env.sh"  # D, L, LD_LIBRARY_PATH, SPARROW_TEST_CORPUS, SM90_ONLY
corpus=${SPARROW_TEST_CORPUS:-/usr/share/dictd/gcide.dict.dz}
export SPARROW_TEST_CORPUS=$corpus SPARROW_DIST_TRAIN_DEVICE=${SPARROW_DIST_TRAIN_DEVICE:-cpu}  # mpirun -x needs them set
G=$(nvidia-smi --query-gpu=name --format=csv,noheader | wc -l)
nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader | tee "$out/cards.txt"
echo "GPUs: $G" | tee -a "$out/summary.txt"
mpirun=(mpirun --allow-run-as-root --oversubscribe --bind-to none -x NCCL_NVLS_ENABLE -x LD_LIBRARY_PATH
        -x SPARROW_TEST_CORPUS -x SPARROW_DIST_TRAIN_DEVICE)

cmake -S . -B build-dist -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH=$D -DCMAKE_LIBRARY_PATH=$L \
  -DSPARROW_MPI=ON "$SM90_ONLY" > "$out/configure.log" 2>&1 || { tail -30 "$out/configure.log"; exit 1; }
grep -E "Sparrow: (MPI|CUDA)" "$out/configure.log"
grep -q "MPI ON" "$out/configure.log" || { echo "no MPI found on this host: the multi-process runs need it"; exit 2; }
ninja -C build-dist -j 32 test_dist test_train train > "$out/build.log" 2>&1 ||
  { grep -E 'error|FAILED' "$out/build.log" | head -40; exit 1; }
echo "build: $(( $(date +%s) - t0 )) s"
bin=build-dist/bin
rc=0

if [[ $parts == *test* ]]; then
  for np in 2 $(( G < 4 ? G : 4 )); do
    [[ $np -ge 2 && $(left) -gt 60 ]] || continue
    timeout 300 "${mpirun[@]}" -np $np $bin/test_dist --gtest_brief=1 > "$out/test_dist_np$np.log" 2>&1 || rc=1
    echo "test_dist np $np: $(grep -cE '^\[       OK' "$out/test_dist_np$np.log") ok lines, $(grep -c 'FAILED  \]' "$out/test_dist_np$np.log") failed lines, cuda instances: $(grep -E 'BackendsRing.*/cuda' "$out/test_dist_np$np.log" | head -2 | tr '\n' ' ')" | tee -a "$out/summary.txt"
    [[ $np -ge $G ]] && break
  done
  if [[ $G -ge 4 && $(left) -gt 90 ]]; then
    SPARROW_DIST_TRAIN_DEVICE=cuda timeout 400 $bin/test_train --gtest_filter='TrainDistributed.*' \
      > "$out/test_train_dist_cuda.log" 2>&1 || rc=1
    echo "TrainDistributed on GPUs: $(grep -E '^\[  (PASSED|FAILED)' "$out/test_train_dist_cuda.log" | tr '\n' ' ')" | tee -a "$out/summary.txt"
  fi
fi

# One training run: P ranks, extra --set overrides; prints "tokens_per_s peak_GiB median_ms" or "fail".
train_run() {
  local P=$1 name=$2; shift 2
  local dir=$out/runs/$name sets=()
  for s in "$@"; do sets+=(--set "$s"); done
  rm -rf "$dir"
  timeout 240 "${mpirun[@]}" -np "$P" $bin/train --config bench/gpt12.yaml --out "$dir" --set data.path=$corpus \
    --set log.every=1 "${sets[@]}" > "$out/runs/$name.log" 2>&1 || { echo fail; return; }
  python3 - "$dir/metrics.jsonl" <<'PY'
import json, statistics, sys
m = [json.loads(l) for l in open(sys.argv[1])]
later = m[2:] or m
print(f"{statistics.median(r['tokens_per_s'] for r in later):.0f} {max(r['peak_memory_bytes'] for r in m) / 2**30:.1f} "
      f"{statistics.median(r['ms'] for r in later):.1f}")
PY
}
mkdir -p "$out/runs"

if [[ $parts == *dp* ]]; then
  echo "| data parallel GPUs | tokens/s | efficiency | peak GiB | step ms |" | tee -a "$out/summary.txt"
  base=""
  for P in 1 2 4 8; do
    [[ $P -le $G && $(left) -gt 60 ]] || break
    read -r tps peak ms <<< "$(train_run $P dp_$P train.seq_len=4096 train.batch_size=$(( 16 * P )) train.steps=8)"
    [[ $tps == fail ]] && { echo "| $P | fail | | | |" | tee -a "$out/summary.txt"; continue; }
    [[ -z $base ]] && base=$tps
    echo "| $P | $tps | $(python3 -c "print(f'{$tps / ($P * $base):.3f}')") | $peak | $ms |" | tee -a "$out/summary.txt"
  done
fi

if [[ $parts == *cp* ]]; then
  echo "| context parallel GPUs | attention | longest trained sequence | peak GiB | step ms |" | tee -a "$out/summary.txt"
  for P in 1 2 4 8; do
    [[ $P -le $G ]] || break
    for att in dense bigbird95 bigbird99; do
      case $att in
        dense) a=(attention.backend=dense) ;;
        bigbird95) a=(attention.backend=block_sparse attention.sparsity=0.95) ;;
        bigbird99) a=(attention.backend=block_sparse attention.sparsity=0.99) ;;
      esac
      best="-" info=""
      for (( N = 65536; N <= ${GPU_DIST_MAX_SEQ:-8388608}; N *= 2 )); do
        [[ $(left) -gt 45 ]] || { info="(deadline)"; break; }
        read -r tps peak ms <<< "$(train_run $P cp_${P}_${att}_$N "${a[@]}" train.seq_len=$N train.batch_size=1 \
          train.steps=2 train.recompute=true dist.context_parallel=$P)"
        [[ $tps == fail ]] && break
        best=$N info="| $peak | $ms |"
      done
      echo "| $P | $att | $best $info" | tee -a "$out/summary.txt"
    done
  done
fi

if [[ $parts == *weak* ]]; then
  n0=${GPU_DIST_WEAK_TOKENS:-65536}
  echo "| weak scaling GPUs | attention | sequence | tokens/s per GPU | vs 1 GPU | step ms |" | tee -a "$out/summary.txt"
  for att in local95 dense; do
    case $att in
      dense) a=(attention.backend=dense) ;;
      local95) a=(attention.backend=block_sparse "attention.pattern.names=[local]" attention.sparsity=0.95) ;;
    esac
    base=""
    for P in 1 2 4 8; do
      [[ $P -le $G && $(left) -gt 45 ]] || break
      N=$(( n0 * P ))
      read -r tps peak ms <<< "$(train_run $P weak_${att}_$P "${a[@]}" train.seq_len=$N train.batch_size=1 \
        train.steps=6 train.recompute=true dist.context_parallel=$P)"
      [[ $tps == fail ]] && { echo "| $P | $att | $N | fail | | |" | tee -a "$out/summary.txt"; continue; }
      per=$(( ${tps%.*} / P )); [[ -z $base ]] && base=$per
      echo "| $P | $att | $N | $per | $(python3 -c "print(f'{$per / $base:.3f}')") | $ms |" | tee -a "$out/summary.txt"
    done
  done
fi
echo "total: $(( $(date +%s) - t0 )) s"
cat "$out/summary.txt"
exit $rc
