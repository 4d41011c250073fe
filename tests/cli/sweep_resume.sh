#!/usr/bin/env bash
# A sweep killed at random points (SIGKILL, SIGINT, SIGTERM) and resumed gives
# the same files as an uninterrupted run; thread count does not change them;
# a corrupt dump fails its jobs with a reason and a non-zero exit.
set -u
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.bash" "$@"

"$KVLAB" synth "$TMP/a.h5" --preset tiny --seed 1 >/dev/null || fail synth
cat > "$TMP/s.yaml" <<YAML
name: resume
dumps: [a.h5]
compressors:
  - fp16
  - {method: kivi, bits: [2, 3, 4], group: [16, 32], residual: [32, 64]}
  - {method: uniform, bits: [2, 4, 8], group: [16, 32], axis: [token, channel]}
replay: {eval_every: 4}
YAML
"$KVLAB" sweep "$TMP/s.yaml" -o "$TMP/full" -j 2 -q --chunk 1 >/dev/null || fail "full run"
"$KVLAB" sweep "$TMP/s.yaml" -o "$TMP/full1" -j 1 -q >/dev/null || fail "1-thread run"
for f in summary layers steps; do
  cmp -s "$TMP/full/$f.csv" "$TMP/full1/$f.csv" || fail "$f.csv differs between 1 and 2 threads"
done

# Kill at random moments, then resume until done.
for sig in KILL INT TERM KILL; do
  "$KVLAB" sweep "$TMP/s.yaml" -o "$TMP/part" -j 2 -q --chunk 1 --resume >/dev/null 2>&1 &
  pid=$!
  sleep "0.$((RANDOM % 4))$((RANDOM % 10))"
  kill -s $sig $pid 2>/dev/null
  wait $pid 2>/dev/null
done
"$KVLAB" sweep "$TMP/s.yaml" -o "$TMP/part" -j 2 -q --chunk 1 --resume >/dev/null || fail "final resume"
for f in summary layers steps; do
  cmp -s "$TMP/full/$f.csv" "$TMP/part/$f.csv" || fail "$f.csv after kill+resume differs from the uninterrupted run"
done
rows=$(($(wc -l < "$TMP/full/summary.csv") - 1))
[ "$rows" -eq 25 ] || fail "expected 25 jobs, got $rows"

# --dry-run prints the plan (jobs, blocks to replay) and writes nothing.
"$KVLAB" sweep "$TMP/s.yaml" -o "$TMP/dry" --dry-run >"$TMP/plan" || fail "dry run"
grep -q "sweep 'resume': 25 jobs over 1 dumps, 100 blocks" "$TMP/plan" || fail "dry-run plan: $(tail -1 "$TMP/plan")"
[ ! -e "$TMP/dry" ] || fail "--dry-run wrote results"

# Without --resume an existing folder is not clobbered.
"$KVLAB" sweep "$TMP/s.yaml" -o "$TMP/full" -q 2>"$TMP/err" && fail "re-run without --resume succeeded"
grep -q "already exist" "$TMP/err" || fail "message: $(cat "$TMP/err")"

# A dump that is corrupt past its header: its jobs fail with the reason, others complete.
cp "$TMP/a.h5" "$TMP/b.h5"
/usr/bin/python3 - "$TMP/b.h5" <<'PY' || fail "corrupting"
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r+") as f:
    k = f["layers/1/keys"][...]
    k[0, 5, 3] = np.nan
    f["layers/1/keys"][...] = k
PY
cat > "$TMP/t.yaml" <<YAML
name: partial
dumps: [a.h5, b.h5]
compressors: [fp16, kivi-2bit]
YAML
"$KVLAB" sweep "$TMP/t.yaml" -o "$TMP/t" -q >/dev/null 2>"$TMP/err" && fail "sweep with a corrupt dump exited 0"
grep -c ",ok," "$TMP/t/summary.csv" | grep -qx 2 || fail "expected 2 ok rows"
grep -c ",failed," "$TMP/t/summary.csv" | grep -qx 2 || fail "expected 2 failed rows"
grep -q "non-finite" "$TMP/t/summary.csv" || grep -q "NaN" "$TMP/t/summary.csv" || fail "failure reason missing"
echo "sweep resume: ok"
