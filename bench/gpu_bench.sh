#!/usr/bin/env bash
# GPU benchmarks, ours and PyTorch's in the same run on the same card. Called by
# scripts/gpu-check.sh with GPU_CHECK_BENCH=1 after the build; writes JSON lines to $1/.
#   BENCH_PARTS="attn train flex profile graph sparse_train" (default: attn train flex);
#   ATTN_SEQS="4096 16384 65536"
#   sparse_train: bench/gpt12.yaml on a causal bigbird layout, Sparrow against PyTorch + FlexAttention
#          given the identical layout (attention_layout --dump-csr → torch_train_compare.py --layout);
#          SPARSE_TRAIN_CASES "seq batch sparsity recompute" entries, comma separated (#13 item 6);
#          recompute 1: train.recompute with train.recompute_chunk=65536, torch_train_compare --checkpoint
#   profile: `train --profile` per TRAIN_CASES entry (op and phase shares of a step)
#   graph: step time with train.cuda_graph off and on (GRAPH_CASES), against torch.compile with
#          and without mode="reduce-overhead" (its CUDA graphs) on the same models
set -uo pipefail
out=${1:-gpu-out}; mkdir -p "$out"
bin=build-gpu/bin
parts=${BENCH_PARTS:-attn train flex}
corpus=${SPARROW_CORPUS:-$PWD/.corpus/gcide.dict.dz}
attn_seqs=${ATTN_SEQS:-4096 16384 65536}
has_part() { [[ " $parts " == *" $1 "* ]]; }

# One Sparrow training run's summary line from its metrics.jsonl (steps after the third).
train_summary() {  # metrics.jsonl T B attention
  python3 - "$@" <<'PY'
import json, sys, statistics
m = [json.loads(l) for l in open(sys.argv[1])]
t = [r["tokens_per_s"] for r in m[3:]] or [r["tokens_per_s"] for r in m]
print(json.dumps({"impl": "sparrow", "T": int(sys.argv[2]), "B": int(sys.argv[3]), "attention": sys.argv[4],
                  "tok_s": round(statistics.median(t)), "step_ms": round(statistics.median(r["ms"] for r in m[3:] or m), 1),
                  "peak_gb": round(max(r["peak_memory_bytes"] for r in m) / 2**30, 1), "loss_first": m[0]["loss"], "loss_last": m[-1]["loss"]}))
PY
}

if has_part attn; then
  echo "== attention fwd+bwd, bf16, B=1, H=16, non-causal: Sparrow"
  for N in $attn_seqs; do for D in 64 128; do
    $bin/bench_attention --device cuda --backend dense --seq $N --heads 16 --head-dim $D --block 128 --dtype bf16 --repeat 10 --json
    [[ $parts == *dense-only* ]] && continue
    for s in 0.9 0.95 0.99; do
      $bin/bench_attention --device cuda --backend block_sparse --pattern bigbird --sparsity $s --seq $N --heads 16 \
        --head-dim $D --block 128 --dtype bf16 --repeat 10 --json
    done
  done; done 2>&1 | tee "$out/sparrow_attention.jsonl"
  echo "== PyTorch SDPA (cuDNN) dense, same shapes"
  timeout 300 python3 bench/attention_gpu_compare.py --densities 1.0 --seqs "${attn_seqs// /,}" 2>&1 | tee "$out/torch_sdpa.jsonl"
fi
if has_part flex; then
  echo "== PyTorch FlexAttention at 10/5/1% (band + global + random, block 128)"
  timeout 400 python3 bench/attention_gpu_compare.py --densities 0.10,0.05,0.01 --seqs "${attn_seqs// /,}" 2>&1 | tee "$out/torch_flex.jsonl"
fi
if has_part train; then
  echo "== training tokens/s: Sparrow (bench/gpt12.yaml)"
  IFS=, read -ra cases <<< "${TRAIN_CASES:-4096 16 dense 0,16384 4 dense 0,16384 4 block_sparse 0.95}"
  for c in "${cases[@]}"; do
    set -- $c
    rm -rf /tmp/sp-train
    timeout ${TRAIN_TIMEOUT:-240} $bin/train --config bench/gpt12.yaml --out /tmp/sp-train --set train.seq_len=$1 --set train.batch_size=$2 \
      --set attention.backend=$3 --set attention.sparsity=$4 --set data.path=$corpus --set data.cache_dir=/tmp/sp-cache \
      > "$out/train_$1_$3.log" 2>&1 || tail -3 "$out/train_$1_$3.log"
    train_summary /tmp/sp-train/metrics.jsonl "$1" "$2" "$3"
  done 2>&1 | tee "$out/sparrow_train.jsonl"
  echo "== training tokens/s: PyTorch (torch.compile, SDPA)"
  timeout 300 python3 bench/torch_train_compare.py ${TORCH_TRAIN_CASES:-4096x16 16384x4} 2>&1 | grep '^{' | tee "$out/torch_train.jsonl"
fi
if has_part graph; then
  echo "== CUDA graph: step time eager vs captured (Sparrow), torch.compile default vs reduce-overhead"
  # layers width heads seq batch
  IFS=, read -ra cases <<< "${GRAPH_CASES:-2 64 4 64 8,4 256 4 256 16,6 512 8 1024 8,12 768 12 4096 16}"
  for c in "${cases[@]}"; do
    set -- $c
    steps=$(( $4 >= 4096 ? 10 : 40 ))
    for mode in off on; do
      rm -rf /tmp/sp-graph
      timeout ${TRAIN_TIMEOUT:-240} $bin/train --config bench/gpt12.yaml --out /tmp/sp-graph --set model.n_layers=$1 \
        --set model.d_model=$2 --set model.n_heads=$3 --set train.seq_len=$4 --set train.batch_size=$5 \
        --set train.steps=$steps --set train.cuda_graph=$mode --set data.path=$corpus --set data.cache_dir=/tmp/sp-cache \
        > "$out/graph_$1x$2_$mode.log" 2>&1 || tail -3 "$out/graph_$1x$2_$mode.log"
      python3 - "$1" "$2" "$4" "$5" "$mode" <<'PY'
import json, sys, statistics
m = [json.loads(l) for l in open("/tmp/sp-graph/metrics.jsonl")]
L, d, T, B, mode = sys.argv[1:]
timed = m[5:]
print(json.dumps({"impl": "sparrow", "layers": int(L), "width": int(d), "T": int(T), "B": int(B), "cuda_graph": mode,
                  "replayed": sum(r["step_mode"] == "cuda graph" for r in timed), "timed": len(timed),
                  "step_ms": round(statistics.median(r["ms"] for r in timed), 3),
                  "tok_s": round(statistics.median(r["tokens_per_s"] for r in timed)),
                  "peak_gb": round(max(r["peak_memory_bytes"] for r in m) / 2**30, 2), "loss_last": m[-1]["loss"]}))
PY
    done
    [[ ${GRAPH_TORCH:-1} == 1 ]] && for mode in default reduce-overhead; do
      timeout 300 python3 bench/torch_train_compare.py --layers $1 --width $2 --heads $3 --mode $mode --steps 20 "$4x$5" \
        2>&1 | grep '^{'
    done
  done 2>&1 | tee "$out/graph.jsonl"
fi
if has_part profile; then
  echo "== training step profile: Sparrow (train --profile, bench/gpt12.yaml)"
  IFS=, read -ra cases <<< "${TRAIN_CASES:-4096 16 dense 0,16384 4 dense 0}"
  for c in "${cases[@]}"; do
    set -- $c
    rm -rf /tmp/sp-prof
    timeout ${TRAIN_TIMEOUT:-240} $bin/train --config bench/gpt12.yaml --out /tmp/sp-prof --profile --set train.steps=5 \
      --set train.seq_len=$1 --set train.batch_size=$2 --set attention.backend=$3 --set attention.sparsity=$4 \
      --set data.path=$corpus --set data.cache_dir=/tmp/sp-cache > "$out/profile_$1_$3.log" 2>&1 || tail -3 "$out/profile_$1_$3.log"
    cp /tmp/sp-prof/profile.txt "$out/profile_$1_$3.txt" 2>/dev/null && head -40 "$out/profile_$1_$3.txt"
  done
fi
if has_part sparse_train; then
  echo "== training on a causal bigbird layout: Sparrow against PyTorch + FlexAttention on the same layout"
  IFS=, read -ra cases <<< "${SPARSE_TRAIN_CASES:-65536 1 0.95 0,2097152 1 0.99 1}"
  for c in "${cases[@]}"; do
    set -- $c
    recompute=$([[ $4 == 1 ]] && echo true || echo false) chunk=$([[ $4 == 1 ]] && echo 65536 || echo 0)
    rm -rf /tmp/sp-sparse
    timeout ${TRAIN_TIMEOUT:-240} $bin/train --config bench/gpt12.yaml --out /tmp/sp-sparse --set train.seq_len=$1 \
      --set train.batch_size=$2 --set attention.backend=block_sparse --set attention.sparsity=$3 \
      --set train.recompute=$recompute --set train.recompute_chunk=$chunk --set train.steps=${SPARSE_TRAIN_STEPS:-6} \
      --set data.path=$corpus --set data.val_fraction=${SPARSE_TRAIN_VAL_FRACTION:-0.05} \
      --set data.cache_dir=/tmp/sp-cache > "$out/sparse_train_$1.log" 2>&1 || tail -3 "$out/sparse_train_$1.log"
    train_summary /tmp/sp-sparse/metrics.jsonl "$1" "$2" "block_sparse $3 recompute=$recompute"
    # The layout train built (bench/gpt12.yaml: bigbird, seed 0, block 128, one layout for all heads).
    $bin/attention_layout --pattern bigbird --seq $1 --block 128 --sparsity $3 --causal --seed 0 \
      --dump-csr /tmp/sp-layout.json > /dev/null
    timeout ${TORCH_TIMEOUT:-400} python3 bench/torch_train_compare.py --layout /tmp/sp-layout.json \
      $([[ $4 == 1 ]] && echo --checkpoint) "$1x$2" 2>&1 | grep '^{'
  done 2>&1 | tee "$out/sparse_train.jsonl"
fi
