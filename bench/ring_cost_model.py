#!/usr/bin/env python3
"""Cost model for context parallelism (ring attention) on 8 to 1024 GPUs: the plan for going
past one host, with its assumptions stated.

For one training step of bench/gpt12.yaml (12 layers, width 768, 12 heads of 64, byte vocab,
recompute on, bf16) on ONE sequence of N tokens split over P GPUs (zigzag, context parallel), it
predicts the step time and the longest N that fits in one GPU's memory, for dense attention and
for block-sparse layouts at 95% and 99% sparsity.

Inputs and assumptions (each printed with the table):
  * Kernel rates: attention fwd+bwd FLOPs = 3.5 * 4 * N^2 * D * H * density (causal halves it)
    at the effective rates measured on one H200 (bench/RESULTS.md): cuDNN dense 462 TF/s; our
    block-sparse kernel today ~140 TF/s at 5-10% density and ~60 TF/s at 1% (ratios to dense in
    RESULTS.md), or a target rate via --sparse-tflops. Everything else: 6 * params * tokens at
    55% of 790 TF/s (the MFU measured for this model).
  * Ring traffic per layer and step: forward K and V (bf16), backward K, V (bf16) and dK, dV
    (f32 accumulators), one shard (N/P tokens) per hop, for the hops the layout needs
    (the plans Sparrow builds, from `ring_volume --plan-only` at N = 1M, block 128: the share of
    hops a plan sends is taken as the same at other N, which holds while a rank's chunk is larger
    than the pattern's window).
  * Links: NVLink 900 GB/s per GPU inside a host of 8; InfiniBand 400 Gb/s (50 GB/s) per GPU
    between hosts. A ring over more than 8 GPUs runs at the slowest link of its path (IB).
    Both ring directions run at once (full duplex).
  * Overlap: each hop's transfer overlaps that hop's attention compute; a hop costs
    max(compute, transfer) plus 10 us latency per message.
  * Memory: parameters, gradients and AdamW state (16 bytes a parameter, replicated), the
    recompute checkpoints (width * 2 bytes per token per layer), one layer's activations, the
    logits of the local tokens (f32, 3 copies), and the ring buffers (4 shards of K, V each way).

Usage:  python3 bench/ring_cost_model.py [--volume bench/results/.../ring_volume.jsonl]
        [--sparse-tflops 370] [--markdown]
"""
import argparse
import json
import math
import os

LAYERS, WIDTH, HEADS, HEAD_DIM, VOCAB, MLP = 12, 768, 12, 64, 256, 4
PARAMS = VOCAB * WIDTH + LAYERS * (4 * WIDTH * WIDTH + 2 * WIDTH * MLP * WIDTH + 9 * WIDTH + MLP * WIDTH)
GPU_MEM = 80e9 * 0.92  # what the allocator can use of an 80 GB card
DENSE_TFLOPS = 462e12
OTHER_RATE = 0.55 * 790e12
NVLINK, IB = 900e9, 50e9
LATENCY = 10e-6
BLOCK = 128


def sparse_rate(density, override):
    if override:
        return override * 1e12
    # measured effective fwd+bwd rates of today's kernel (H200, 64K, D 64; bench/RESULTS.md)
    return 60e12 if density <= 0.02 else 140e12


def load_plans(path):
    """(pattern, target sparsity, ranks) -> fraction of the full ring's hops the plan sends."""
    plans = {}
    for line in open(path):
        j = json.loads(line)
        plans[(j["pattern"], round(j["target_sparsity"], 2), j["ranks"])] = j["hops_sent"] / j["hops_full_ring"]
    return plans


def needed_hops(plans, pattern, sparsity, ranks):
    if ranks == 1 or pattern == "dense":
        return ranks * (ranks - 1)
    return plans[(pattern, round(sparsity, 2), ranks)] * ranks * (ranks - 1)


def step_time(plans, pattern, density, n_tokens, ranks, override):
    tokens = n_tokens / ranks
    attn_flops = 3.5 * 4 * n_tokens**2 * HEAD_DIM * HEADS * density * 0.5 * LAYERS  # causal
    rate = DENSE_TFLOPS if pattern == "dense" else sparse_rate(density, override)
    attn = attn_flops / ranks / rate
    other = 6 * PARAMS * tokens / OTHER_RATE * (4 / 3)  # recompute replays the forward
    hops = needed_hops(plans, pattern, 1 - density, ranks) / max(ranks, 1)  # per rank
    shard = tokens * HEADS * HEAD_DIM
    bytes_per_hop = shard * (2 * 2) + shard * (2 * 2 + 2 * 4)  # fwd K,V bf16; bwd K,V + dK,dV f32
    link = NVLINK if ranks <= 8 else IB
    if ranks == 1:
        return attn + other, 0.0
    compute_per_hop = attn / max(hops, 1) if hops else 0
    hop = max(compute_per_hop, bytes_per_hop / link) + 2 * LATENCY
    comm = hops * LAYERS * (hop - compute_per_hop) if hops else 0  # the part not hidden
    return attn + other + comm, hops * LAYERS * bytes_per_hop / link


def memory(n_tokens, ranks):
    tokens = n_tokens / ranks
    per_layer = (12 * WIDTH + 2 * MLP * WIDTH) * 2
    ring = 4 * 2 * tokens * HEADS * HEAD_DIM * 2
    return PARAMS * 16 + tokens * (LAYERS * WIDTH * 2 + per_layer) + tokens * VOCAB * 4 * 3 + ring


def longest(ranks):
    n = BLOCK * 2 * ranks
    while memory(n * 2, ranks) < GPU_MEM:
        n *= 2
    lo, hi = n, n * 2
    while hi - lo > BLOCK * 2 * ranks:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if memory(mid, ranks) < GPU_MEM else (lo, mid)
    return lo


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--plans", default=os.path.join(here, "results/cpu-2026-12-05-ring/ring_plans_1M.jsonl"),
                    help="ring_volume --plan-only output (hops each plan sends, per pattern and rank count)")
    ap.add_argument("--sparse-tflops", type=float, default=0, help="assume this block-sparse rate (TF/s)")
    ap.add_argument("--seq", type=int, default=1 << 20, help="sequence length for the step-time table")
    args = ap.parse_args()
    plans = load_plans(args.plans)
    cases = [("dense", "dense", 1.0), ("local", "local 95%", 0.05), ("local+global", "local+global 95%", 0.05),
             ("bigbird", "bigbird 95%", 0.05), ("local", "local 99%", 0.01), ("local+global", "local+global 99%", 0.01),
             ("bigbird", "bigbird 99%", 0.01)]
    print(f"step time of one {args.seq:,}-token sequence (seconds; in brackets: transfer time if not overlapped)")
    print("| GPUs | " + " | ".join(c[1] for c in cases) + " |")
    print("|---|" + "---|" * len(cases))
    for ranks in (1, 8, 16, 64, 256, 1024):
        row = []
        for pattern, _, density in cases:
            if args.seq < BLOCK * 2 * ranks:
                row.append("-")
                continue
            t, xfer = step_time(plans, pattern, density, args.seq, ranks, args.sparse_tflops)
            row.append(f"{t:.2f} ({xfer:.2f})")
        print(f"| {ranks} | " + " | ".join(row) + " |")
    print()
    print("longest trainable sequence (tokens, memory-bound) and its step time")
    print("| GPUs | longest N | " + " | ".join(c[1] for c in cases) + " |")
    print("|---|---|" + "---|" * len(cases))
    for ranks in (1, 8, 16, 64, 256, 1024):
        n = longest(ranks)
        row = [f"{step_time(plans, p, d, n, ranks, args.sparse_tflops)[0]:.1f} s" for p, _, d in cases]
        print(f"| {ranks} | {n / 1e6:.1f}M | " + " | ".join(row) + " |")
    print(f"\n(params {PARAMS / 1e6:.1f}M; memory per GPU {GPU_MEM / 1e9:.0f} GB usable; links NVLink "
          f"{NVLINK / 1e9:.0f} GB/s inside 8, IB {IB / 1e9:.0f} GB/s across hosts)")


if __name__ == "__main__":
    main()
