#!/usr/bin/env bash
# Model in the loop: how KV-compression error compounds over decoding.
# Runs `kvlab decode` (teacher-forced over the recorded continuation, and
# free-running greedy) on the bundled tiny model + dump for each method, one
# CSV per (method, mode) in results/error-compounding/, then plots them.
#
#   experiments/error-compounding.sh [KVLAB_BIN] [DUMP]
# Environment: STEPS (default: every recorded token), FREE_STEPS (default 256),
# THREADS (default 2).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
KVLAB=${1:-$ROOT/build-model/kvlab}
DUMP=${2:-$ROOT/data/shakespeare-a.kvdump.h5}
MODEL=$ROOT/data/tiny-lm/model.h5
OUT=$ROOT/results/error-compounding
THREADS=${THREADS:-2}
FREE_STEPS=${FREE_STEPS:-256}
METHODS=(fp16 kivi-2bit gear-2bit gear-l-2bit h2o-20pct streaming-20pct)

[ -x "$KVLAB" ] || { echo "error-compounding: kvlab binary not found at $KVLAB" >&2; exit 1; }
[ -f "$MODEL" ] || { echo "error-compounding: $MODEL not found" >&2; exit 1; }
[ -f "$DUMP" ] || { echo "error-compounding: $DUMP not found" >&2; exit 1; }
mkdir -p "$OUT"

LIST=$("$KVLAB" list 2>/dev/null || true)
steps_opt=()
[ -n "${STEPS:-}" ] && steps_opt=(--steps "$STEPS")
for m in "${METHODS[@]}"; do
  # A preset or method that this build does not know is skipped, not fatal.
  if ! grep -qw -- "$m" <<<"$LIST"; then
    echo "skip $m: not registered in this kvlab build (kvlab list)"
    continue
  fi
  echo "== $m (teacher)"
  "$KVLAB" -q decode --model "$MODEL" --dump "$DUMP" --compressor "$m" --mode teacher "${steps_opt[@]}" \
    -j "$THREADS" --csv "$OUT/$m.teacher.csv" | tail -n 4
  echo "== $m (free, $FREE_STEPS steps)"
  "$KVLAB" -q decode --model "$MODEL" --dump "$DUMP" --compressor "$m" --mode free --steps "$FREE_STEPS" \
    -j "$THREADS" --csv "$OUT/$m.free.csv" | tail -n 4
done

/usr/bin/python3 "$ROOT/analysis/plot_decode.py" "$OUT" --out "$OUT/error-compounding" \
  && echo "figures: $OUT/error-compounding.png, .pdf"
