#!/usr/bin/env bash
# One call on an H100/H200 host for the sm_90a block-attention kernels: build (test_gpu,
# bench_attention, attention_layout), the GPU attention tests (sm_90a forward and backward vs CPU
# and vs mma.sync), compute-sanitizer on small cases (scripts/gpu-sanitize.sh), SASS check for HGMMA, then timings
# of the sm_90a kernels (forward and backward) vs the mma.sync ones (bench_attention,
# SPARROW_BLOCK_ATTN_KERNEL) and FlexAttention on the identical layouts (attention_layout --dump-csr → bench/attention_gpu_compare.py).
# Logs and JSON lines under $OUT (or ./gpu-out). Needs .deps (scripts/gpu-deps.sh: libraries under
# .deps/usr; cudnn_frontend-*; cutlass-*).
#   HOPPER_PARTS="test memcheck sass bench adaptive flex huge ncu kernels ab"   (default: all but huge, ncu,
#                kernels and ab; kernels: each kernel's time in one forward + backward of HOPPER_KERNELS_CASES
#                ("N D sparsity pattern causal" entries, comma separated; "_" not causal), by Nsight
#                Compute's gpu__time_duration, to see where the 1 % cells' time goes; ncu:
#                Nsight Compute sections for the forward and the dK/dV kernel on HOPPER_NCU_CASES,
#                "N D sparsity pattern" entries, comma separated; adaptive times
#                the adaptive backend with its selection on the host and on the device,
#                SPARROW_ADAPTIVE_SELECT; huge: 99 % bigbird fwd+bwd at HOPPER_HUGE_N tokens, H 16,
#                D 64, causal, with its peak device memory — #13's 4M-tokens-within-80-GB cell)
#   ab: A/B of environment settings, each run in turn on every case (bench_attention, same call):
#   HOPPER_AB_VARIANTS="default SPARROW_SM90_FWD_ORDER=rows SPARROW_BLOCK_ATTN_BWD=sm90_bwd_kv1"  (space-
#                separated; "default" sets nothing; A=x,B=y sets two; BIN=path times another build's
#                bench_attention, e.g. the last commit's, carried beside this one)
#   HOPPER_AB_CASES="bigbird 65536 16 64 0.99 _,bigbird 65536 16 64 0.99 --causal"  (comma-separated
#                "pattern N H D sparsity causal" entries; "_" for not causal)
#   HOPPER_SEQS="16384 65536"  HOPPER_DIMS="64 128"  HOPPER_DENS="0.90 0.95 0.99" (sparsities)
#   HOPPER_PATTERNS="bigbird"  layout patterns bench and flex time (e.g. "bigbird local")
#   HOPPER_SM90_ONLY=1   build only sm_90a code (halves nvcc time; SPARROW_CUDA_GENCODE)
#   HOPPER_DEADLINE=s    skip the remaining parts after this many seconds (default 280)
#   HOPPER_STB_DIR=dir   a folder holding stb/*.h (the GPU host has no libstb-dev; .deps/usr neither)
#   HOPPER_CAUSAL="no yes"  which masks to time (default both)
#   HOPPER_KERNELS="sm90 mma"  which kernels bench times (default both); sm90_onepass,
#                sm90_deterministic, sm90_bwd_pingpong, sm90_bwd_smem and sm90_bwd_kv1: the sm_90a forward with that backward
#                (SPARROW_BLOCK_ATTN_BWD); sm90 runs the forward and dK/dV pass on the persistent
#                grid, sm90_grid on a grid of one CTA an item
#   HOPPER_SKIP_BUILD=1  reuse build-gpu as it is (built by scripts/gpu-check.sh in the same call)
#   HOPPER_SANITIZE_KERNEL=sm90_grid  the forward the sanitizers run (default sm90, the persistent
#                grid); the backward they run follows SPARROW_BLOCK_ATTN_BWD
set -uo pipefail
out=${OUT:-$PWD/gpu-out}; mkdir -p "$out"
t0=$(date +%s)
deadline=${HOPPER_DEADLINE:-280}
left() { echo $(( deadline - ($(date +%s) - t0) )); }
parts=${HOPPER_PARTS:-test memcheck sass bench adaptive flex}
huge_n=${HOPPER_HUGE_N:-4194304}
source "$(dirname "$0")/gpu-env.sh"  # D, L, LD_LIBRARY_PATH, SPARROW_TEST_CORPUS, SM90_ONLY
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader | tee "$out/card.txt"
[[ -d .deps/usr ]] || echo "WARNING: .deps/usr missing (run scripts/gpu-deps.sh where apt works, and carry .deps)"
ls -d .deps/cutlass-*/include >/dev/null 2>&1 || echo "WARNING: no .deps/cutlass-*: the sm_90a kernel is not built"
[[ -n ${HOPPER_STB_DIR:-} ]] && export CMAKE_INCLUDE_PATH=$HOPPER_STB_DIR
gencode=()
[[ ${HOPPER_SM90_ONLY:-0} == 1 ]] && gencode=("$SM90_ONLY")
[[ ${HOPPER_SKIP_BUILD:-0} == 1 ]] || cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH=$D -DCMAKE_LIBRARY_PATH=$L \
  -DSPARROW_MPI=OFF "${gencode[@]}" > "$out/configure.log" 2>&1 || { tail -30 "$out/configure.log"; exit 1; }
grep -i cutlass "$out/configure.log"
[[ ${HOPPER_SKIP_BUILD:-0} == 1 ]] || ninja -C build-gpu -j 16 -k 0 test_gpu test_attention bench_attention attention_layout > "$out/build.log" 2>&1 ||
  { grep -E 'error|FAILED' "$out/build.log" | head -40; exit 1; }
echo "build: $(( $(date +%s) - t0 )) s"
grep -A2 "sm90.*fwd_kernel\|fwd_kernelILi" "$out/build.log" | head -20
bin=build-gpu/bin
rc=0

if [[ $parts == *test* ]]; then
  # The sm_90a backward first, on its own clock: should it hang or fail, the later parts time the
  # mma.sync backward instead (SPARROW_BLOCK_ATTN_BWD=mma) and the rest of the call still measures.
  timeout 240 $bin/test_gpu --gtest_filter='AttentionSm90Gpu.Backward*' > "$out/test_sm90_bwd.log" 2>&1; brc=$?
  grep -E '^\[  (PASSED|FAILED) |INFO|Failure' "$out/test_sm90_bwd.log" | head -20
  if [[ $brc -ne 0 ]]; then
    echo "sm_90a backward: rc=$brc (124: timed out); the parts below use the mma.sync backward"
    export SPARROW_BLOCK_ATTN_BWD=mma bwd_failed=1
    rc=1
  fi
  timeout $(( $(left) > 20 ? $(left) - 10 : 10 )) $bin/test_gpu \
    --gtest_filter='AttentionSm90Gpu.Forward*:AttentionSm90Lists.*:AttentionGpu.*:AdaptiveSelectGpu.*' \
    > "$out/test_sm90.log" 2>&1 || rc=$?
  # The block-attention kernels' cases on every device (tests/attention/block_attention_test.cpp).
  timeout $(( $(left) > 20 ? $(left) - 10 : 10 )) $bin/test_attention --gtest_filter='*BlockAttentionOnDevice.*/cuda' \
    >> "$out/test_sm90.log" 2>&1 || rc=$?
  grep -E '^\[  (PASSED|FAILED) |^\[  FAILED|NOTE|INFO|Failure|error|Expected|Which is|vs ' "$out/test_sm90.log" | head -40
  echo "tests rc=$rc ($(( $(date +%s) - t0 )) s)"
fi
if [[ $parts == *memcheck* && $(left) -gt 60 ]]; then
  SPARROW_BLOCK_ATTN_KERNEL=${HOPPER_SANITIZE_KERNEL:-sm90} "$(dirname "$0")/gpu-sanitize.sh" $bin/bench_attention \
    "$out/sanitizers.txt" || rc=1
  cat "$out/sanitizers.txt"
fi
if [[ $parts == *sass* ]]; then
  for part in sm90 sm90_bwd; do  # the forward's object, then the backward's
    obj=$(find build-gpu -name "block_attention_$part.cu.o" | head -1)
    if [[ -n $obj ]] && command -v cuobjdump >/dev/null; then
      cuobjdump --dump-sass "$obj" > "$out/$part.sass" 2>&1
      echo "SASS $part: HGMMA $(grep -c HGMMA "$out/$part.sass"), local LDL/STL $(grep -cE 'LDL|STL' "$out/$part.sass"), UTMALDG $(grep -c UTMALDG "$out/$part.sass"), USETMAXREG $(grep -c USETMAXREG "$out/$part.sass")"
    fi
  done
fi
seqs=${HOPPER_SEQS:-16384 65536}; dims=${HOPPER_DIMS:-64 128}; dens=${HOPPER_DENS:-0.90 0.95 0.99}
patterns=${HOPPER_PATTERNS:-bigbird}
causal_flags=""
for c in ${HOPPER_CAUSAL:-no yes}; do causal_flags+=" $([[ $c == yes ]] && echo --causal || echo _)"; done
if [[ $parts == *bench* ]]; then
  for pat in $patterns; do for N in $seqs; do for Dh in $dims; do for s in $dens; do for causal in $causal_flags; do
    for kern in ${HOPPER_KERNELS:-sm90 mma}; do
      [[ $(left) -lt 20 ]] && { echo "bench: out of time at $pat N=$N D=$Dh s=$s"; break 6; }
      # kernel names: mma, sm90 (forwards; the default backward) and sm90_onepass,
      # sm90_deterministic, sm90_bwd_pingpong, sm90_bwd_smem, sm90_bwd_kv1 (the sm90 forward with that backward)
      fwd=$kern bwd=${SPARROW_BLOCK_ATTN_BWD:-}
      case $kern in sm90_onepass | sm90_deterministic | sm90_bwd_pingpong | sm90_bwd_smem | sm90_bwd_kv1)
        [[ -n ${bwd_failed:-} ]] && continue
        fwd=sm90 bwd=$kern ;;
      esac
      SPARROW_BLOCK_ATTN_KERNEL=$fwd SPARROW_BLOCK_ATTN_BWD=$bwd timeout 60 $bin/bench_attention --device cuda --backend block_sparse \
        --pattern $pat --sparsity $s --seq $N --heads 16 --head-dim $Dh --block 128 --dtype bf16 --repeat 10 \
        ${causal#_} --json | python3 -c "import json,sys
for l in sys.stdin:
  j=json.loads(l); j['kernel']='$kern'; j['pattern']='$pat'; print(json.dumps(j))" >> "$out/sparrow_attn.jsonl"
    done
  done; done; done; done; done
  python3 - "$out/sparrow_attn.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
kernels = list(dict.fromkeys(r["kernel"] for r in rows))
by = {}
for r in rows:
    by.setdefault((r.get("pattern", "bigbird"), r["seq"], r["head_dim"], round(r["density"], 3), r["causal"]), {})[r["kernel"]] = r
print(f"{'pattern':>8} {'N':>7} {'D':>4} {'dens':>6} {'causal':>6} | " + " | ".join(f"{k:>18} fwd  f+b ms" for k in kernels))
for k, v in sorted(by.items()):
    cells = [f"{v[n]['fwd_ms']:9.3f} {v[n]['fwdbwd_ms']:9.3f}" if n in v else f"{'-':>9} {'-':>9}" for n in kernels]
    print(f"{k[0]:>8} {k[1]:>7} {k[2]:>4} {k[3]:>6} {str(k[4]):>6} | " + " | ".join(f"{c:>27}" for c in cells))
PY
fi
if [[ $parts == *adaptive* ]]; then
  for N in $seqs; do for where in host device; do
    [[ $(left) -lt 20 ]] && { echo "adaptive: out of time at N=$N"; break 2; }
    SPARROW_ADAPTIVE_SELECT=$where timeout 60 $bin/bench_attention --device cuda --backend adaptive --sparsity 0.95 \
      --seq $N --heads 16 --head-dim 64 --block 128 --dtype bf16 --repeat 10 --causal --json | python3 -c "import json,sys
for l in sys.stdin:
  j=json.loads(l); j['selection']='$where'; print(json.dumps(j))" >> "$out/adaptive.jsonl"
  done; done
  python3 - "$out/adaptive.jsonl" <<'PY'
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    print(f"adaptive 95% N={r['seq']:>6} selection on the {r['selection']:<6}: fwd {r['fwd_ms']:8.3f} ms, fwd+bwd {r['fwdbwd_ms']:8.3f} ms")
PY
fi
if [[ $parts == *flex* && $(left) -gt 60 ]]; then
  fl_dens=$(python3 -c "print(','.join(str(round(1-float(x),2)) for x in '$dens'.split()))")
  for pat in $patterns; do
    ld=$(mktemp -d)  # outside $OUT: a dozen layout files there cost the other files' return
    for N in $seqs; do for s in $dens; do for causal in $causal_flags; do
      pct=$(python3 -c "print(int(round((1-$s)*100)))")
      cf=${causal#_}
      $bin/attention_layout --pattern $pat --seq $N --block 128 --sparsity $s --heads 16 $cf \
        --dump-csr "$ld/layout_N${N}_b128_d${pct}${cf:+_causal}.json" > /dev/null
    done; done; done
    for causal in $causal_flags; do
      [[ $(left) -lt 40 ]] && { echo "flex: out of time at $pat"; break 2; }
      timeout $(( $(left) - 10 )) python3 bench/attention_gpu_compare.py --layout-dir "$ld" \
        --layout-tag $pat --seqs "${seqs// /,}" --dims "${dims// /,}" --densities "$fl_dens" ${causal#_} --iters 10 \
        2>> "$out/flex.err" | tee -a "$out/flex.jsonl"
    done
  done
fi
if [[ $parts == *ncu* ]]; then
  # Nsight Compute on one forward and one backward of each case: throughput against the peaks,
  # warp stall reasons (where the cycles go), issue slots, and the sampled stall sites. Clocks stay
  # as the card has them (--clock-control none). One launch of each kernel after bench_attention's
  # warm-up; the dK/dV kernel is the one pass's (the default backward).
  IFS=, read -ra ncu_cases <<< "${HOPPER_NCU_CASES:-262144 64 0.90 local,65536 128 0.90 local,65536 64 0.99 local}"
  for c in "${ncu_cases[@]}"; do
    set -- $c
    [[ $(left) -lt 60 ]] && { echo "ncu: out of time at $c"; break; }
    log="$out/ncu_N$1_D$2_s$3_$4.txt"
    timeout $(( $(left) - 10 )) ncu --clock-control none --kernel-name regex:'fwd_kernel|dkdv_kernel' --launch-skip 2 \
      --launch-count 2 --section SpeedOfLight --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis \
      --section SchedulerStats --section WarpStateStats --section Occupancy --section SourceCounters \
      $bin/bench_attention --device cuda --backend block_sparse --pattern $4 --sparsity $3 --seq $1 --heads 16 \
      --head-dim $2 --block 128 --dtype bf16 --repeat 1 --json > "$log" 2>&1
    echo "ncu $c rc=$?: $(grep -cE '^  [a-z_:]+.*(fwd|dkdv)_kernel' "$log") kernel reports"
    grep -E '(fwd|dkdv)_kernel|Compute \(SM\) Throughput|Memory Throughput|Issue Slots Busy|Warp Cycles Per Issued|No Eligible|Stall' "$log" | head -30
    # The dK/dV kernel's raw metrics: where its warps stall (per issued instruction, largest first),
    # the tensor pipe's share of the cycles, L2 hit rates and DRAM bytes.
    [[ $(left) -lt 60 ]] && continue
    raw="$out/ncu_raw_N$1_D$2_s$3_$4.txt"
    timeout $(( $(left) - 10 )) ncu --clock-control none --kernel-name regex:'dkdv_kernel' --launch-skip 1 --launch-count 1 \
      --section WarpStateStats --section SpeedOfLight --section MemoryWorkloadAnalysis --section ComputeWorkloadAnalysis \
      --page raw $bin/bench_attention --device cuda --backend block_sparse --pattern $4 --sparsity $3 --seq $1 --heads 16 \
      --head-dim $2 --block 128 --dtype bf16 --repeat 1 --json > "$raw" 2>&1
    python3 - "$raw" <<'PY'
import re, sys
stalls, other = [], []
for line in open(sys.argv[1]):
    f = line.split()
    if len(f) < 2: continue
    name, val = f[0], f[-1].replace(",", "")
    try: v = float(val)
    except ValueError: continue
    m = re.match(r"smsp__average_warps_issue_stalled_(\w+)_per_issue_active\.ratio$", name)
    if m: stalls.append((v, m.group(1)))
    elif re.search(r"pipe_tensor.*pct_of_peak|lts__t_sector_hit_rate\.pct$|dram__bytes_(read|write)\.sum$|sm__throughput\.avg\.pct", name):
        other.append(f"{name} {f[-2] if len(f) > 2 else ''} {val}")
print("  stalls per issued instruction:", ", ".join(f"{n} {v:.2f}" for v, n in sorted(stalls, reverse=True)[:10]))
for o in other: print("  " + o)
PY
  done
fi
if [[ $parts == *ab* ]]; then
  # Variants alternate within a case, so a drifting clock touches them alike; ratios to the first.
  read -ra ab_variants <<< "${HOPPER_AB_VARIANTS:-default SPARROW_SM90_FWD_ORDER=rows SPARROW_BLOCK_ATTN_BWD=sm90_bwd_kv1}"
  IFS=, read -ra ab_cases <<< "${HOPPER_AB_CASES:-bigbird 65536 16 64 0.99 _,bigbird 65536 16 64 0.99 --causal,bigbird 65536 16 128 0.99 --causal,local 65536 16 64 0.99 _,bigbird 16384 16 64 0.99 _,bigbird 16384 16 64 0.95 _,bigbird 4096 16 64 0.90 _,bigbird 65536 12 64 0.95 --causal,bigbird 65536 16 64 0.90 _}"
  for c in "${ab_cases[@]}"; do
    set -- $c
    for v in "${ab_variants[@]}"; do
      [[ $(left) -lt 20 ]] && { echo "ab: out of time at $c"; break 2; }
      envs=() exe=$bin/bench_attention
      [[ $v != default ]] && IFS=, read -ra envs <<< "$v"
      for i in "${!envs[@]}"; do [[ ${envs[$i]} == BIN=* ]] && { exe=${envs[$i]#BIN=}; unset "envs[$i]"; }; done
      env "${envs[@]}" timeout 60 $exe --device cuda --backend block_sparse --pattern $1 --sparsity $5 \
        --seq $2 --heads $3 --head-dim $4 --block 128 --dtype bf16 --repeat 10 ${6#_} --json | python3 -c "import json,sys
for l in sys.stdin:
  j=json.loads(l); j['variant']='$v'; print(json.dumps(j))" >> "$out/ab.jsonl"
    done
  done
  python3 - "$out/ab.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
variants = list(dict.fromkeys(r["variant"] for r in rows))
by = {}
for r in rows:
    by.setdefault((r["pattern"], r["seq"], r["heads"], r["head_dim"], round(r["density"], 3), r["causal"]), {})[r["variant"]] = r
print("pattern N H D density causal | " + " | ".join(f"{v}: fwd f+b ms (f+b ×)" for v in variants))
for k, v in by.items():
    base = v.get(variants[0])
    cells = [f"{v[x]['fwd_ms']:.3f} {v[x]['fwdbwd_ms']:.3f} ({base['fwdbwd_ms'] / v[x]['fwdbwd_ms']:.3f})"
             if x in v and base else "-" for x in variants]
    print(" ".join(str(x) for x in k) + " | " + " | ".join(cells))
PY
fi
if [[ $parts == *kernels* ]]; then
  # The kernels of bench_attention's last forward + backward (with --repeat 1: warm-up forward,
  # warm-up f+b, timed forward, timed f+b; the last f+b starts at the fourth forward kernel), each
  # timed alone by ncu's replay. cudaMemsetAsync (the dQ sums' zeroing) is no kernel: it is the f+b
  # time less the kernels' sum.
  IFS=, read -ra kernel_cases <<< "${HOPPER_KERNELS_CASES:-65536 64 0.99 bigbird _,65536 64 0.99 bigbird --causal,65536 128 0.99 bigbird _}"
  for c in "${kernel_cases[@]}"; do
    set -- $c
    [[ $(left) -lt 60 ]] && { echo "kernels: out of time at $c"; break; }
    csv=$(mktemp --suffix=.csv)  # not under $out: a call brings back few files
    timeout $(( $(left) - 10 )) ncu --clock-control none --metrics gpu__time_duration.sum --csv \
      $bin/bench_attention --device cuda --backend block_sparse --pattern $4 --sparsity $3 --seq $1 --heads 16 \
      --head-dim $2 --block 128 --dtype bf16 --repeat 1 ${5#_} --json > "$csv" 2>&1
    python3 - "$csv" "$c" <<'PY'
import csv, io, re, sys
lines = open(sys.argv[1]).read().splitlines()
start = next((i for i, l in enumerate(lines) if l.startswith('"ID"')), None)
if start is None:
    sys.exit(f"kernels {sys.argv[2]}: no ncu table in {sys.argv[1]}")
rows = [r for r in csv.DictReader(io.StringIO("\n".join(lines[start:]))) if r.get("Metric Name") == "gpu__time_duration.sum"]
def us(r):
    v = float(r["Metric Value"].replace(",", ""))
    return v / 1e3 if r["Metric Unit"] == "nsecond" else v * 1e3 if r["Metric Unit"] == "msecond" else v
fwd = [i for i, r in enumerate(rows) if "fwd_kernel" in r["Kernel Name"]]
last = rows[fwd[3]:] if len(fwd) >= 4 else rows
total = sum(us(r) for r in last)
print(f"kernels of one forward + backward, {sys.argv[2]}: {len(last)} launches, {total:.0f} µs")
bench = [l for l in lines[:start] if l.startswith("{")]
print("  bench (under ncu, so its times are not the card's): " + (bench[-1][:200] if bench else "none"))
for r in last:
    name = re.sub(r"\(.*", "", r["Kernel Name"]).replace("void ", "")
    print(f"  {us(r):9.1f} µs  {name[:110]}")
PY
  done
fi
if [[ $parts == *huge* && $(left) -gt 60 ]]; then
  timeout $(( $(left) - 10 )) $bin/bench_attention --device cuda --backend block_sparse --pattern bigbird --sparsity 0.99 \
    --seq "$huge_n" --heads 16 --head-dim 64 --block 128 --dtype bf16 --repeat 3 --causal --json > "$out/huge.jsonl" 2> "$out/huge.err"
  echo "huge (N=$huge_n, 99 %, causal) rc=$?: $(python3 -c "import json,sys
for l in open(sys.argv[1]):
  j=json.loads(l); print(f\"fwd {j['fwd_ms']:.1f} ms, fwd+bwd {j['fwdbwd_ms']:.1f} ms, peak {j.get('peak_bytes',0)/2**30:.1f} GiB above the inputs' {4*j['seq']*16*64*2/2**30:.1f}\")" "$out/huge.jsonl" 2>&1 | tail -1)"
fi
echo "total: $(( $(date +%s) - t0 )) s"
exit $rc
