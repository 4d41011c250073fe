#!/usr/bin/env bash
# GEAR vs KIVI at matched FP16 window and bits per element
# (experiments/gear-vs-kivi-matched.yaml): replay + model in the loop,
# teacher-forced (all 640 recorded tokens) and free-running (greedy, FREE_STEPS
# tokens), on every dump of the YAML, for several seeds (GEAR's power iteration
# is seeded; KIVI is deterministic, so it runs with the first seed only). Then
# the summary: per configuration the mean over dumps (each dump's value
# averaged over seeds) with a 95 % Student-t interval, and paired GEAR − KIVI
# differences (results/gear-vs-kivi-matched/report.md).
#
#   experiments/gear-vs-kivi-matched.sh [KVLAB_BIN]
# Environment: SEEDS (default "0 1 2"), FREE_STEPS (default 256), THREADS (default: all cores).
# Re-running resumes: finished jobs are kept.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
KVLAB=${1:-$ROOT/build/kvlab}
BASE=$ROOT/experiments/gear-vs-kivi-matched.yaml
OUT=$ROOT/results/gear-vs-kivi-matched
SEEDS=${SEEDS:-0 1 2}
FREE_STEPS=${FREE_STEPS:-256}
PY=/usr/bin/python3
[ -x "$KVLAB" ] || { echo "gear-vs-kivi-matched: kvlab binary not found at $KVLAB" >&2; exit 1; }
mkdir -p "$OUT"
threads=()
[ -n "${THREADS:-}" ] && threads=(--threads "$THREADS")

# The seeded (GEAR) entries of the YAML's compressor list, as a YAML flow list.
gear_list=$($PY - "$BASE" <<'PY'
import json, sys, yaml
entries = yaml.safe_load(open(sys.argv[1]))["compressors"]
name = lambda e: e if isinstance(e, str) else e["method"]
print(json.dumps([e for e in entries if name(e).startswith("gear")]))
PY
)
first=1
for seed in $SEEDS; do
  for mode in teacher free; do
    dir=$OUT/$mode-s$seed
    cfg=$OUT/$mode-s$seed.yaml
    {
      echo "include: $BASE"
      echo "name: gear-vs-kivi-matched-$mode-s$seed"
      echo "seed: $seed"
      echo "out: $dir"
      if [ "$mode" = free ]; then echo "decode: {mode: free, steps: $FREE_STEPS}"; fi
      if [ $first -eq 0 ]; then echo "compressors: $gear_list"; fi
    } >"$cfg"
    resume=()
    [ -f "$dir/summary.csv" ] && resume=(--resume)
    echo "== $mode, seed $seed -> $dir"
    "$KVLAB" sweep "$cfg" "${resume[@]}" "${threads[@]}"
  done
  first=0
done
$PY "$ROOT/experiments/gear_vs_kivi_matched.py" "$OUT" | tee "$OUT/report.md"
