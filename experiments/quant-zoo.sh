#!/usr/bin/env bash
# Error vs bits/element of rotation-based and mixed-precision quantizers
# against KIVI, GEAR and KVQuant (experiments/quant-zoo.yaml):
#   1. writes a 7B-shaped synthetic dump with outlier key channels
#      (llama2-7b heads: 32 x d=128, but 4 layers and 1024 tokens) unless present;
#   2. runs the sweep (extra arguments go to `kvlab sweep`, e.g. --resume);
#   3. prints error vs bits/element per dump and draws the standard figures.
#
#   experiments/quant-zoo.sh [KVLAB_BIN] [sweep args...]
# Environment: THREADS (default: all cores).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
KVLAB=${1:-$ROOT/build/kvlab}
shift || true
DATA=$ROOT/results/quant-zoo-data
DUMP=$DATA/synth-llama2-7b-outliers.kvdump.h5
OUT=$ROOT/results/quant-zoo

[ -x "$KVLAB" ] || { echo "quant-zoo: kvlab binary not found at $KVLAB" >&2; exit 1; }
mkdir -p "$DATA"
if [ ! -f "$DUMP" ]; then
  # 4 persistent outlier key channels per layer, 8x the others (before RoPE).
  "$KVLAB" synth --preset llama2-7b --layers 4 --tokens 1024 --prompt 512 --seed 7 \
    --outlier-channels 4 --outlier-scale 8 "$DUMP"
fi

threads=()
[ -n "${THREADS:-}" ] && threads=(--threads "$THREADS")
"$KVLAB" sweep "$ROOT/experiments/quant-zoo.yaml" "${threads[@]}" "$@"

/usr/bin/python3 - "$OUT/summary.csv" <<'PY'
import sys
import pandas as pd
s = pd.read_csv(sys.argv[1])
s = s[s.status == "ok"]
cols = ["bits_per_element", "k_rel_err_global", "v_rel_err_global", "attn_out_rel", "attn_kl"]
pd.set_option("display.width", 250)
pd.set_option("display.max_rows", 500)
pd.set_option("display.max_colwidth", 90)
for dump, g in s.groupby("dump", sort=True):
    print(f"\n== {dump}")
    print(g.sort_values(["method", "bits_per_element"])[["spec"] + cols].to_string(index=False, float_format="%.4f"))
PY
/usr/bin/python3 "$ROOT/analysis/plot_results.py" "$OUT" >/dev/null && echo "figures: $OUT/figures/"
