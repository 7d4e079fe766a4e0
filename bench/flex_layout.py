"""A FlexAttention BlockMask with exactly the block pairs of a Sparrow layout (the per-head CSR that
`attention_layout --dump-csr` writes), built with tensor operations so that it scales to millions
of tokens (16K blocks a side at 2M tokens, block 128): shared by bench/attention_gpu_compare.py and
bench/torch_train_compare.py.

Fairness: every pair off the causal diagonal goes into full_kv_num_blocks/full_kv_indices, so
Flex skips the mask_mod there as our kernels skip per-element masking on full blocks; under
causality the diagonal pairs are the partial blocks, with the causal mask_mod. from_kv_blocks
derives the transposed (backward) lists itself.
"""
import json

import torch


def load_layout(path):
    with open(path) as f:
        return json.load(f)


def _rows_to_lists(dense):
    """[H, nb, nb] bool → (num [1, H, nb] int32, idx [1, H, nb, nb] int32): each row's True columns,
    ascending, first (a stable sort of ~dense puts them there)."""
    num = dense.sum(-1, dtype=torch.int32)
    idx = torch.argsort((~dense).to(torch.int8), dim=-1, stable=True).to(torch.int32)
    return num[None], idx[None]


def block_mask_from_layout(layout, heads, causal, device):
    from torch.nn.attention.flex_attention import BlockMask

    n, block = layout["seq_len"], layout["block_size"]
    if n % block != 0:
        raise ValueError(f"the Flex comparison needs N ({n}) to be a multiple of the block ({block})")
    nb = n // block
    lh = layout["heads"]
    if len(lh) not in (1, heads):
        raise ValueError(f"layout has {len(lh)} heads, expected 1 or {heads}")
    dense = torch.zeros(len(lh), nb, nb, dtype=torch.bool, device=device)
    for h, csr in enumerate(lh):
        rp = torch.tensor(csr["row_ptr"], dtype=torch.int64, device=device)
        ci = torch.tensor(csr["col_idx"], dtype=torch.int64, device=device)
        rows = torch.repeat_interleave(torch.arange(nb, device=device), rp[1:] - rp[:-1])
        dense[h, rows, ci] = True
    diag = torch.eye(nb, dtype=torch.bool, device=device)[None]
    full = dense & ~diag if causal else dense
    part = dense & diag if causal else torch.zeros_like(dense)
    full_num, full_idx = _rows_to_lists(full)
    del full
    part_num, part_idx = _rows_to_lists(part)
    del part, dense
    kwargs = dict(BLOCK_SIZE=block, seq_lengths=(n, n))
    if causal:
        kwargs["mask_mod"] = lambda b, h, q, kv: q >= kv
    return BlockMask.from_kv_blocks(part_num, part_idx, full_num, full_idx, **kwargs)
