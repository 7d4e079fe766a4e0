#!/usr/bin/env bash
# compute-sanitizer on the sm_90a block-attention kernels, small cases (a few seconds each under
# instrumentation): racecheck at D 64 and D 128 (the shared-memory hand-offs: notes, staged dQ
# bands, the ring's buffers) and on the deterministic backward, memcheck on split plans (the
# chunks' slots and their combine), synccheck. They catch what the tests' comparisons cannot: a race
# that happens to give the right numbers.
#   scripts/gpu-sanitize.sh BENCH_ATTENTION LOG   (appends a line a case to LOG, and a failing
#                                                  case's report; exit 1 if any case failed)
# The forward is SPARROW_BLOCK_ATTN_KERNEL's (default: the persistent sm90 grid), as the caller sets.
set -uo pipefail
bench=${1:?usage: $0 BENCH_ATTENTION LOG} log=${2:?usage: $0 BENCH_ATTENTION LOG}
scratch=$(mktemp) rc=0
for c in "64 racecheck _" "128 racecheck _" "64 racecheck SPARROW_BLOCK_ATTN_BWD=sm90_deterministic" \
  "128 memcheck SPARROW_SM90_SPLIT=1,SPARROW_SM90_PERSISTENT_CTAS=2" "64 synccheck _"; do
  read -r d tool envs <<< "$c"
  vars=()
  [[ $envs != _ ]] && IFS=, read -ra vars <<< "$envs"
  env "${vars[@]}" timeout 90 compute-sanitizer --tool "$tool" --print-limit 5 "$bench" --device cuda \
    --backend block_sparse --pattern bigbird --sparsity 0.5 --seq 700 --heads 2 --batch 2 --head-dim "$d" \
    --block 128 --dtype bf16 --repeat 1 --causal --json > "$scratch" 2>&1
  src=$?
  summary=$(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$scratch" | head -1)
  echo "$tool D $d ${envs#_} rc=$src: $summary" >> "$log"
  [[ $src -ne 0 || ! $summary =~ (" 0 errors"|" 0 hazards") ]] && { rc=1; cat "$scratch" >> "$log"; }
done
rm -f "$scratch"
exit $rc
