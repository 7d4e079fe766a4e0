"""PyTorch CPU side of the dense attention comparison: scaled_dot_product_attention forward and
forward+backward on the CPU, f32, the same shapes as `bench_attention --device cpu --backend dense`.
Median of R runs after one warm-up; one JSON line per case. Threads: torch.set_num_threads(T).

  python3 bench/torch_cpu_sdpa.py --seq 4096 --heads 4 --head-dim 64 [--causal] [--threads 2]
"""
import argparse, json, statistics, time
import torch
import torch.nn.functional as F

ap = argparse.ArgumentParser()
ap.add_argument("--seq", type=int, required=True)
ap.add_argument("--heads", type=int, default=4)
ap.add_argument("--head-dim", type=int, default=64)
ap.add_argument("--batch", type=int, default=1)
ap.add_argument("--causal", action="store_true")
ap.add_argument("--threads", type=int, default=0)
ap.add_argument("--repeat", type=int, default=5)
a = ap.parse_args()
if a.threads:
    torch.set_num_threads(a.threads)
g = torch.Generator().manual_seed(0)
shape = (a.batch, a.heads, a.seq, a.head_dim)
q, k, v = (torch.randn(shape, generator=g, requires_grad=True) for _ in range(3))
do = torch.randn(shape, generator=g)


def fwd():
    with torch.no_grad():
        F.scaled_dot_product_attention(q, k, v, is_causal=a.causal)


def fwd_bwd():
    o = F.scaled_dot_product_attention(q, k, v, is_causal=a.causal)
    o.backward(do)
    q.grad = k.grad = v.grad = None


def median_ms(fn):
    fn()
    ts = []
    for _ in range(a.repeat):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ts)


print(json.dumps({"impl": "torch_cpu_sdpa", "torch": torch.__version__, "threads": torch.get_num_threads(),
                  "seq": a.seq, "heads": a.heads, "head_dim": a.head_dim, "causal": a.causal,
                  "fwd_ms": round(median_ms(fwd), 2), "fwdbwd_ms": round(median_ms(fwd_bwd), 2)}))
