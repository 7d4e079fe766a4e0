"""PyTorch side of the training benchmark: the same byte-level GPT as bench/gpt12.yaml (12 layers,
d=768, 12 heads, RoPE, tanh-GELU MLP ×4, tied embeddings, biases), bf16 autocast, fused AdamW,
torch.compile, dense causal SDPA — or, with --layout, FlexAttention on the block layout Sparrow
trains with (bench/flex_layout.py: full-block lists, causal mask_mod on the diagonal only). Prints
one JSON line per case: tokens/s over timed steps after warm-up (CUDA-synchronised wall clock,
median of --steps steps) and peak memory.

  python3 bench/torch_train_compare.py 4096x16 16384x4
  python3 bench/torch_train_compare.py --layers 4 --width 256 --heads 4 --mode reduce-overhead 256x16
  build/bin/attention_layout --pattern bigbird --seq 65536 --block 128 --sparsity 0.95 --causal \
      --dump-csr /tmp/bb95.json        # the layout train makes for bench/gpt12.yaml's attention
  python3 bench/torch_train_compare.py --layout /tmp/bb95.json 65536x1
  python3 bench/torch_train_compare.py --layout /tmp/bb99_2m.json --checkpoint 2097152x1

--checkpoint recomputes each block in the backward (torch.utils.checkpoint), as train's
`recompute: on` does.

--mode reduce-overhead is torch.compile's CUDA-graph mode (the forward and backward replay as
graphs; the fused AdamW step runs outside them), the PyTorch counterpart of train.cuda_graph.
"""
import argparse, json, time
import torch, torch.nn as nn, torch.nn.functional as F
import torch.utils.checkpoint

dev = "cuda"


class Block(nn.Module):
    def __init__(self, d, h, attend):
        super().__init__()
        self.h, self.attend = h, attend
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc, self.fc_out = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x, cos, sin):
        B, T, C = x.shape
        D = C // self.h
        q, k, v = self.qkv(self.norm1(x)).view(B, T, 3, self.h, D).permute(2, 0, 3, 1, 4)

        def rope(t):  # rotate (even, odd) pairs, as Sparrow's rope op does
            e, o = t[..., 0::2], t[..., 1::2]
            return torch.stack([e * cos - o * sin, e * sin + o * cos], -1).flatten(-2)

        y = self.attend(rope(q), rope(k), v)
        x = x + self.proj(y.transpose(1, 2).reshape(B, T, C))
        return x + self.fc_out(F.gelu(self.fc(self.norm2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, L=12, d=768, h=12, attend=None, checkpoint=False):
        super().__init__()
        self.d, self.h, self.checkpoint = d, h, checkpoint
        self.embed = nn.Embedding(256, d)
        attend = attend or (lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True))
        self.blocks = nn.ModuleList(Block(d, h, attend) for _ in range(L))
        self.norm_f = nn.LayerNorm(d)

    def forward(self, idx, tgt):
        T = idx.shape[1]
        D = self.d // self.h
        pos = torch.arange(T, device=dev, dtype=torch.float32)
        inv = 10000.0 ** (-torch.arange(0, D, 2, device=dev, dtype=torch.float32) / D)
        ang = pos[:, None] * inv[None]
        cos, sin = ang.cos(), ang.sin()
        x = self.embed(idx)
        for b in self.blocks:
            if self.checkpoint:
                x = torch.utils.checkpoint.checkpoint(b, x, cos, sin, use_reentrant=False)
            else:
                x = b(x, cos, sin)
        logits = F.linear(self.norm_f(x), self.embed.weight)
        return F.cross_entropy(logits.float().view(-1, 256), tgt.view(-1))


def run(T, B, a):
    torch.manual_seed(0)
    attend, attn_name = None, "sdpa"
    if a.layout:
        from torch.nn.attention.flex_attention import flex_attention
        from flex_layout import block_mask_from_layout, load_layout

        layout = load_layout(a.layout)
        if layout["seq_len"] != T:
            raise ValueError(f"{a.layout}: seq_len {layout['seq_len']}, the case has T = {T}")
        bm = block_mask_from_layout(layout, a.heads, True, dev)
        # flex_attention is not an autocast op: RoPE's f32 cos/sin leave q and k in f32, v in bf16.
        attend, attn_name = (lambda q, k, v: flex_attention(q.to(v.dtype), k.to(v.dtype), v, block_mask=bm)), "flex"
    model = GPT(a.layers, a.width, a.heads, attend, a.checkpoint).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, fused=True)
    cm = torch.compile(model, mode=None if a.mode == "default" else a.mode)
    idx = torch.randint(0, 256, (B, T), device=dev)
    tgt = torch.randint(0, 256, (B, T), device=dev)

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = cm(idx, tgt)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(5):
        step()
    torch.cuda.synchronize()
    times = []
    for _ in range(a.steps):
        t0 = time.time()
        step()
        torch.cuda.synchronize()
        times.append(time.time() - t0)
    dt = sorted(times)[len(times) // 2]
    print(json.dumps({"impl": "pytorch", "torch": torch.__version__, "card": torch.cuda.get_device_name(),
                      "layers": a.layers, "width": a.width, "mode": a.mode, "attention": attn_name,
                      "layout": a.layout, "checkpoint": a.checkpoint, "T": T, "B": B, "step_s": round(dt, 4),
                      "step_ms": round(dt * 1e3, 3), "tok_s": round(B * T / dt),
                      "peak_gb": round(torch.cuda.max_memory_allocated() / 2**30, 1)}), flush=True)
    del model, opt, cm
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()


ap = argparse.ArgumentParser()
ap.add_argument("cases", nargs="+", help="TxB, e.g. 4096x16")
ap.add_argument("--layers", type=int, default=12)
ap.add_argument("--width", type=int, default=768)
ap.add_argument("--heads", type=int, default=12)
ap.add_argument("--mode", default="default", choices=["default", "reduce-overhead", "max-autotune"])
ap.add_argument("--steps", type=int, default=5, help="timed steps (median)")
ap.add_argument("--layout", help="a causal layout JSON (attention_layout --dump-csr): FlexAttention on it")
ap.add_argument("--checkpoint", action="store_true", help="recompute each block in the backward")
args = ap.parse_args()
for case in args.cases:
    T, B = (int(x) for x in case.split("x"))
    try:
        run(T, B, args)
    except Exception as e:  # report and go on to the next case
        print(json.dumps({"impl": "pytorch", "T": T, "B": B, "error": str(e)[:300]}), flush=True)
