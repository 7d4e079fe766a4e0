#!/usr/bin/env python3
"""The #13 table from one GPU call's JSON lines: our sm_90a kernels (bench_attention --json, as
scripts/gpu-hopper-check.sh's bench part writes them to sparrow_attn.jsonl) against FlexAttention
and cuDNN SDPA dense (bench/attention_gpu_compare.py, flex.jsonl), cell by cell, as a markdown table
for bench/RESULTS.md.

  python3 bench/flex_table.py OUT/sparrow_attn.jsonl OUT/flex.jsonl [--kernel sm90]

Columns: the layout's realised density; forward and forward+backward ms (medians, as measured) and
their ratios (Flex ms ÷ ours, so > 1 is faster than Flex); dense f+b ms and our speed-up over it;
and the useful TFLOP/s ÷ dense's, i.e. density · dense ms ÷ our ms (the FLOPs we do are density ×
dense's, with dense's and the density counted over the same region: the whole square, or under
causality the lower triangle).
"""
import argparse
import json


def rows(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip().startswith("{")]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ours", help="bench_attention --json lines (sparrow_attn.jsonl)")
    ap.add_argument("flex", help="attention_gpu_compare.py lines (flex.jsonl)")
    ap.add_argument("--kernel", default="sm90", help="which of our kernels' lines to tabulate")
    args = ap.parse_args()

    flex, dense = {}, {}
    for r in rows(args.flex):
        if "error" in r:
            continue
        key = (r["N"], r["D"], r["causal"])
        if r["impl"] == "sdpa_cudnn":
            dense[key] = r
        elif r["impl"] == "flex":
            flex[(r.get("layout", ""),) + key + (round(r["density_target"], 3),)] = r

    print("| pattern | N | D | causal | target | density | ours fwd ms | Flex fwd ms | fwd ×Flex | ours f+b ms "
          "| Flex f+b ms | f+b ×Flex | dense f+b ms | f+b × dense | TF/s ÷ dense's |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    ours = [r for r in rows(args.ours) if r.get("kernel", args.kernel) == args.kernel]
    ours.sort(key=lambda r: (r.get("pattern", ""), r["seq"], r["head_dim"], r["causal"], r["target_sparsity"]))
    for r in ours:
        target = round(1 - r["target_sparsity"], 3)
        key = (r["seq"], r["head_dim"], r["causal"])
        fl = flex.get((r.get("pattern", ""),) + key + (target,))
        dn = dense.get(key)

        def cell(value, fmt):
            return "-" if value is None else format(value, fmt)

        fwd_x = fl and fl["ms_fwd"] / r["fwd_ms"]
        fb_x = fl and fl["ms_fwd_bwd"] / r["fwdbwd_ms"]
        over_dense = dn and dn["ms_fwd_bwd"] / r["fwdbwd_ms"]
        rate = dn and r["density"] * dn["ms_fwd_bwd"] / r["fwdbwd_ms"]
        print(f"| {r.get('pattern', '')} | {r['seq'] // 1024}K | {r['head_dim']} | {'yes' if r['causal'] else 'no'} "
              f"| {target * 100:g} % | {r['density']:.3f} | {r['fwd_ms']:.3f} | {cell(fl and fl['ms_fwd'], '.3f')} "
              f"| {cell(fwd_x, '.2f')} | {r['fwdbwd_ms']:.3f} | {cell(fl and fl['ms_fwd_bwd'], '.3f')} "
              f"| **{cell(fb_x, '.2f')}** | {cell(dn and dn['ms_fwd_bwd'], '.1f')} | {cell(over_dense, '.1f')} "
              f"| {cell(rate, '.2f')} |")


if __name__ == "__main__":
    main()
