#!/usr/bin/env bash
# A sweep killed at random points (SIGKILL, SIGINT, SIGTERM) and resumed gives
# the same files as an uninterrupted run; thread count does not change them;
# a corrupt dump fails its jobs with a reason and a non-zero exit.
set -u
KVLAB=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$KVLAB" synth "$dir/a.h5" --preset tiny --seed 1 >/dev/null || fail synth
cat > "$dir/s.yaml" <<YAML
name: resume
dumps: [a.h5]
compressors:
  - fp16
  - {method: kivi, bits: [2, 3, 4], group: [16, 32], residual: [32, 64]}
  - {method: uniform, bits: [2, 4, 8], group: [16, 32], axis: [token, channel]}
replay: {eval_every: 4}
YAML
"$KVLAB" sweep "$dir/s.yaml" -o "$dir/full" -j 2 -q --chunk 1 >/dev/null || fail "full run"
"$KVLAB" sweep "$dir/s.yaml" -o "$dir/full1" -j 1 -q >/dev/null || fail "1-thread run"
for f in summary layers steps; do
  cmp -s "$dir/full/$f.csv" "$dir/full1/$f.csv" || fail "$f.csv differs between 1 and 2 threads"
done

# Kill at random moments, then resume until done.
for sig in KILL INT TERM KILL; do
  "$KVLAB" sweep "$dir/s.yaml" -o "$dir/part" -j 2 -q --chunk 1 --resume >/dev/null 2>&1 &
  pid=$!
  sleep "0.$((RANDOM % 4))$((RANDOM % 10))"
  kill -s $sig $pid 2>/dev/null
  wait $pid 2>/dev/null
done
"$KVLAB" sweep "$dir/s.yaml" -o "$dir/part" -j 2 -q --chunk 1 --resume >/dev/null || fail "final resume"
for f in summary layers steps; do
  cmp -s "$dir/full/$f.csv" "$dir/part/$f.csv" || fail "$f.csv after kill+resume differs from the uninterrupted run"
done
rows=$(($(wc -l < "$dir/full/summary.csv") - 1))
[ "$rows" -eq 25 ] || fail "expected 25 jobs, got $rows"

# Without --resume an existing folder is not clobbered.
"$KVLAB" sweep "$dir/s.yaml" -o "$dir/full" -q 2>"$dir/err" && fail "re-run without --resume succeeded"
grep -q "already exist" "$dir/err" || fail "message: $(cat "$dir/err")"

# A dump that is corrupt past its header: its jobs fail with the reason, others complete.
cp "$dir/a.h5" "$dir/b.h5"
/usr/bin/python3 - "$dir/b.h5" <<'PY' || fail "corrupting"
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r+") as f:
    k = f["layers/1/keys"][...]
    k[0, 5, 3] = np.nan
    f["layers/1/keys"][...] = k
PY
cat > "$dir/t.yaml" <<YAML
name: partial
dumps: [a.h5, b.h5]
compressors: [fp16, kivi-2bit]
YAML
"$KVLAB" sweep "$dir/t.yaml" -o "$dir/t" -q >/dev/null 2>"$dir/err" && fail "sweep with a corrupt dump exited 0"
grep -c ",ok," "$dir/t/summary.csv" | grep -qx 2 || fail "expected 2 ok rows"
grep -c ",failed," "$dir/t/summary.csv" | grep -qx 2 || fail "expected 2 failed rows"
grep -q "non-finite" "$dir/t/summary.csv" || grep -q "NaN" "$dir/t/summary.csv" || fail "failure reason missing"
echo "sweep resume: ok"
