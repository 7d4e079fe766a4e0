#!/usr/bin/env python3
"""PyTorch's attention timings on this GPU, to set beside `bench_attention --device cuda`.

For each case (N in 4K/16K/64K, head dim 64/128, density 100/10/5/1 %, 16 heads, batch 1, bf16)
it times forward+backward (and forward alone) of
  - sdpa_cudnn: torch SDPA restricted to the cuDNN backend (dense only; the 100 % row), and
  - flex:       FlexAttention (torch.compile'd) with a BlockMask built from the SAME block layout,
and prints one JSON line per (implementation, case):
  {"impl", "N", "D", "H", "B", "block", "causal", "density_target", "density", "active_blocks",
   "ms_fwd", "ms_fwd_bwd", "tflops_fwd_bwd", "device", "torch"}
TFLOP/s counts the FLOPs the layout asks for: forward 4·b²·D per active block pair per head (the
ragged tail counted as whole blocks, as bench_attention does), backward 2.5× forward
("tflops_fwd" and "tflops_fwd_bwd").

Fairness: the BlockMask is built with full_kv_num_blocks/full_kv_indices for every block pair
that needs no element mask (everything but the causal diagonal), so Flex runs mask_mod only on
the partial blocks, as our kernels do; BlockMask.from_kv_blocks derives the transposed
full_q_*/q_* lists its backward walks. N must be a multiple of the block (no ragged tail here).
Sparrow's own layouts: `build/bin/attention_layout --pattern bigbird --seq N --block 128
--sparsity 0.9 --heads 16 [--causal] --dump-csr DIR/layout_N{N}_b128_d10[_causal].json`, then
--layout-dir DIR (scripts/gpu-hopper-check.sh does this).

The layout. With --layout-dir DIR, the layout of each case is read from
DIR/layout_N{N}_b{block}_d{density%}{_causal}.json, a file of the shape
  {"seq_len": N, "block_size": b, "heads": [{"row_ptr": [...], "col_idx": [...]}, ...]}
(one head entry, shared, or one per head) — the CSR Sparrow's kernel runs, so both sides compute
the same block pairs. Without it, the layout is built here with the semantics of Sparrow's
bigbird pattern at a target sparsity (attention/layout/patterns.h): per query block row r a
budget max(floor_r, round(density·R_r)) with error-diffusion carry, R_r = nb (causal: r + 1);
taken in order: the diagonal, the sink columns c < global, then local blocks nearest first
(±1, ±2, … up to the window), then uniform random blocks of the row's range, then nearest-first
fill; rows r < global see everything. The random blocks are drawn from numpy, not Sparrow's
Philox streams, so individual blocks differ while the per-row counts, the band and the sinks
match; the realised density is printed.

Timing: CUDA events around each call after warm-up, median of --iters runs. Run on the GPU
host (torch 2.11 there):   python3 bench/attention_gpu_compare.py [--causal] [--quick]
"""
import argparse
import json
import os
import sys

import random

import torch
import torch._dynamo

from flex_layout import block_mask_from_layout, load_layout


def bigbird_layout(n, block, density, causal, window=3, n_global=1, seed=0):
    """CSR (row_ptr, col_idx) of the band + global + random layout at a target density."""
    nb = (n + block - 1) // block
    rng = random.Random(seed)
    row_ptr = [0]
    col_idx = []
    carry = 0.0
    for r in range(nb):
        R = r + 1 if causal else nb
        if r < n_global or density >= 1.0:
            cols = list(range(R))
        else:
            floor_r = 1 + sum(1 for c in range(min(n_global, R)) if c != r)
            want = density * R + carry
            budget = int(round(want))
            if budget < floor_r:
                budget = floor_r
            else:
                carry = want - budget
            budget = min(budget, R)
            chosen = []
            seen = set()

            def take(c):
                if 0 <= c < R and c not in seen and len(chosen) < budget:
                    seen.add(c)
                    chosen.append(c)

            take(r)
            for c in range(n_global):
                take(c)
            for d in range(1, window + 1):
                take(r - d)
                if not causal:
                    take(r + d)
            rest = [c for c in range(R) if c not in seen]
            if rest and len(chosen) < budget:
                for c in rng.sample(rest, min(len(rest), budget - len(chosen))):
                    take(c)
            d = 1
            while len(chosen) < budget and d < R:
                take(r - d)
                take(r + d)
                d += 1
            cols = sorted(chosen)
        col_idx.extend(cols)
        row_ptr.append(len(col_idx))
    return {"seq_len": n, "block_size": block, "heads": [{"row_ptr": row_ptr, "col_idx": col_idx}]}


def dense_pairs(nb, causal):
    return nb * (nb + 1) // 2 if causal else nb * nb


def time_ms(fn, warmup, iters):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        a = torch.cuda.Event(enable_timing=True)
        b = torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b))
    times.sort()
    return times[len(times) // 2]


def run_case(impl, attn, q, k, v, warmup, iters):
    g = torch.randn_like(q)

    def fwd():
        with torch.no_grad():
            attn(q, k, v)

    def fwd_bwd():
        out = attn(q, k, v)
        out.backward(g)
        q.grad = k.grad = v.grad = None

    return time_ms(fwd, warmup, iters), time_ms(fwd_bwd, warmup, iters)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seqs", default="4096,16384,65536")
    ap.add_argument("--dims", default="64,128")
    ap.add_argument("--densities", default="1.0,0.10,0.05,0.01")
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--block", type=int, default=128, help="layout and FlexAttention block size")
    ap.add_argument("--causal", action="store_true")
    ap.add_argument("--window", type=int, default=3)
    ap.add_argument("--global-blocks", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--layout-dir", default="", help="read each case's CSR from here (see the module doc)")
    ap.add_argument("--layout-tag", default="", help="name of the layouts in --layout-dir (bigbird, local, ...), printed")
    ap.add_argument("--no-dense", action="store_true", help="skip the cuDNN SDPA dense rows")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--quick", action="store_true", help="N = 4K and 16K only")
    args = ap.parse_args()

    if not torch.cuda.is_available():
        sys.exit("attention_gpu_compare: no CUDA device visible to torch")
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.nn.attention.flex_attention import flex_attention

    # One compiled graph per (shape, block-mask size, grad mode): 12 for the default cases, past
    # dynamo's default limit of 8, after which it silently runs flex_attention's eager reference,
    # which materialises the [B, H, N, N] scores (256 GiB at 64K: the OOMs of earlier runs).
    torch._dynamo.config.cache_size_limit = 64
    torch._dynamo.config.accumulated_cache_size_limit = 256
    flex = torch.compile(flex_attention, dynamic=False)
    dev = torch.device("cuda")
    name = torch.cuda.get_device_name(dev)
    seqs = [int(s) for s in args.seqs.split(",")]
    if args.quick:
        seqs = [s for s in seqs if s <= 16384]
    dims = [int(d) for d in args.dims.split(",")]
    dens = [float(x) for x in args.densities.split(",")]
    B, H, blk = args.batch, args.heads, args.block

    for n in seqs:
        nb = (n + blk - 1) // blk
        for d in dims:
            torch.manual_seed(0)
            q, k, v = (torch.randn(B, H, n, d, device=dev, dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
            flops_dense = 4.0 * (blk * blk) * d * dense_pairs(nb, args.causal) * H * B
            base = {"N": n, "D": d, "H": H, "B": B, "block": blk, "causal": args.causal, "device": name,
                    "torch": torch.__version__}

            # Dense cuDNN SDPA.
            def sdpa(q, k, v):
                with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
                    return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=args.causal)

            try:
                if args.no_dense:
                    raise StopIteration
                f_ms, fb_ms = run_case("sdpa_cudnn", sdpa, q, k, v, args.warmup, args.iters)
                print(json.dumps({"impl": "sdpa_cudnn", **base, "density_target": 1.0, "density": 1.0,
                                  "active_blocks": dense_pairs(nb, args.causal) * H, "ms_fwd": round(f_ms, 4),
                                  "ms_fwd_bwd": round(fb_ms, 4),
                                  "tflops_fwd": round(flops_dense / (f_ms * 1e-3) / 1e12, 1),
                                  "tflops_fwd_bwd": round(3.5 * flops_dense / (fb_ms * 1e-3) / 1e12, 1)}),
                      flush=True)
            except StopIteration:
                pass
            except Exception as e:  # a shape the backend refuses: say so, keep going
                print(json.dumps({"impl": "sdpa_cudnn", **base, "error": str(e).splitlines()[0]}), flush=True)

            for rho in dens:
                tag = f"layout_N{n}_b{blk}_d{int(round(rho * 100))}{'_causal' if args.causal else ''}.json"
                if args.layout_dir:
                    layout = load_layout(os.path.join(args.layout_dir, tag))
                else:
                    layout = bigbird_layout(n, blk, rho, args.causal, args.window, args.global_blocks, args.seed)
                active = sum(len(h["col_idx"]) for h in layout["heads"]) * (H if len(layout["heads"]) == 1 else 1)
                density = active / (dense_pairs(nb, args.causal) * H)
                try:
                    bm = block_mask_from_layout(layout, H, args.causal, dev)
                    attn = lambda q, k, v: flex(q, k, v, block_mask=bm)
                    f_ms, fb_ms = run_case("flex", attn, q, k, v, args.warmup, args.iters)
                    fl = flops_dense * density
                    print(json.dumps({"impl": "flex", **base, "density_target": rho, "density": round(density, 5),
                                      "active_blocks": active, "ms_fwd": round(f_ms, 4), "ms_fwd_bwd": round(fb_ms, 4),
                                      "tflops_fwd": round(fl / (f_ms * 1e-3) / 1e12, 1),
                                      "tflops_fwd_bwd": round(3.5 * fl / (fb_ms * 1e-3) / 1e12, 1),
                                      "layout": args.layout_tag or ("file" if args.layout_dir else "python-bigbird")}),
                          flush=True)
                except Exception as e:
                    print(json.dumps({"impl": "flex", **base, "density_target": rho,
                                      "error": str(e).splitlines()[0] if str(e) else type(e).__name__}), flush=True)
            del q, k, v
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
