#!/usr/bin/env bash
# Sweeps with a model in the loop: decode_* summary columns and
# decode_steps.csv appear, resume keeps them exact, bad settings fail early.
set -u
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.bash" "$@"

cp "$SRC/data/shakespeare-a.kvdump.h5" "$TMP/a.h5"
cp "$SRC/data/tiny-lm/model.h5" "$TMP/model.h5"
cat > "$TMP/s.yaml" <<YAML
name: loop
dumps: [a.h5]
model: model.h5
decode: {mode: teacher, steps: 24}
replay: {layers: [0], max_steps: 24, eval_every: 8}
compressors: [fp16, kivi-2bit, h2o-20pct]
YAML
"$KVLAB" sweep "$TMP/s.yaml" -o "$TMP/r" -q >/dev/null || fail "sweep with model"
head -1 "$TMP/r/summary.csv" | grep -q "decode_mean_kl,decode_max_kl,decode_top1" || fail "decode columns missing"
[ "$(($(wc -l < "$TMP/r/decode_steps.csv") - 1))" -eq 72 ] || fail "expected 3 jobs x 24 decode rows"
# fp16 in the loop is exact: KL 0, top-1 agreement 1, perplexity ratio 1.
/usr/bin/python3 - "$TMP/r" <<'PY' || fail "fp16 decode row not exact"
import sys, pandas as pd
s = pd.read_csv(sys.argv[1] + "/summary.csv").set_index("method")
assert s.loc["fp16", "decode_mean_kl"] == 0 and s.loc["fp16", "decode_top1"] == 1, s.loc["fp16"]
assert s.loc["fp16", "decode_ppl_ratio"] == 1
assert s.loc["kivi", "decode_mean_kl"] > 0
PY

# Resume after the fact gives the same files.
cp -r "$TMP/r" "$TMP/r2"
head -n 2 "$TMP/r/summary.csv" > "$TMP/r2/summary.csv"   # only the first job finished
"$KVLAB" sweep "$TMP/s.yaml" -o "$TMP/r2" -q --resume >/dev/null || fail "resume"
for f in summary decode_steps steps layers; do
  cmp -s "$TMP/r/$f.csv" "$TMP/r2/$f.csv" || fail "$f.csv differs after resume"
done

# The K/V check's tolerance comes from decode: {kv_rtol: ...}: too tight fails every job on the dump
# with the reason (the reference runs once), off skips the check.
sed 's/decode: {mode: teacher, steps: 24}/decode: {mode: teacher, steps: 24, kv_rtol: 1e-6}/' "$TMP/s.yaml" > "$TMP/tight.yaml"
"$KVLAB" sweep "$TMP/tight.yaml" -o "$TMP/tight" -q >/dev/null 2>&1
/usr/bin/python3 - "$TMP/tight" <<'PY' || fail "tight kv_rtol: every job should fail with the check's message"
import sys, pandas as pd
s = pd.read_csv(sys.argv[1] + "/summary.csv")
assert (s.status == "failed").all(), s.status
assert s.error.str.contains("relative norm").all() and s.error.str.contains("exceeds the tolerance 1e-06").all()
PY
sed 's/decode: {mode: teacher, steps: 24}/decode: {mode: teacher, steps: 24, kv_rtol: off}/' "$TMP/s.yaml" > "$TMP/off.yaml"
"$KVLAB" sweep "$TMP/off.yaml" -o "$TMP/off" -q >/dev/null || fail "kv_rtol: off"
/usr/bin/python3 - "$TMP/off" "$TMP/r" <<'PY' || fail "kv_rtol: off should run unchecked, same numbers"
import sys, pandas as pd
off, on = (pd.read_csv(d + "/summary.csv").set_index("method") for d in sys.argv[1:])
assert off.decode_kv_rel_max.isna().all() and (on.decode_kv_rel_max < 1e-3).all(), on.decode_kv_rel_max
assert (off.decode_mean_kl == on.decode_mean_kl).all()
PY

# Errors before any work: decode without model, missing model, dump without tokens.
expect() {
  local want=$1 yaml=$2
  "$KVLAB" sweep "$yaml" -o "$TMP/x" -q >/dev/null 2>"$TMP/err" && fail "$yaml succeeded"
  grep -qF "$want" "$TMP/err" || fail "message '$(cat "$TMP/err")' lacks '$want'"
  [ ! -e "$TMP/x" ] || fail "$yaml wrote results"
}
printf 'name: e\ndumps: [a.h5]\ndecode: {steps: 4}\ncompressors: [fp16]\n' > "$TMP/e1.yaml"
expect "'decode' needs 'model'" "$TMP/e1.yaml"
printf 'name: e\ndumps: [a.h5]\nmodel: nope.h5\ncompressors: [fp16]\n' > "$TMP/e2.yaml"
expect "model: '" "$TMP/e2.yaml"
"$KVLAB" synth "$TMP/synth.h5" --preset tiny >/dev/null
/usr/bin/python3 -c "import h5py,sys; f=h5py.File(sys.argv[1],'r+'); del f['tokens']" "$TMP/synth.h5"
printf 'name: e\ndumps: [synth.h5]\nmodel: model.h5\ncompressors: [fp16]\n' > "$TMP/e3.yaml"
expect "needs the dump's /tokens" "$TMP/e3.yaml"
printf 'name: e\ndumps: [a.h5]\nmodel: model.h5\ndecode: {mode: sideways}\ncompressors: [fp16]\n' > "$TMP/e4.yaml"
expect "'decode.mode' must be teacher or free" "$TMP/e4.yaml"
printf 'name: e\ndumps: [a.h5]\nmodel: model.h5\ndecode: {kv_rtol: -1}\ncompressors: [fp16]\n' > "$TMP/e5.yaml"
expect "'decode.kv_rtol' must be a positive number or off" "$TMP/e5.yaml"
printf 'name: e\ndumps: [a.h5]\nmodel: model.h5\ndecode: {kv_rtol: loose}\ncompressors: [fp16]\n' > "$TMP/e6.yaml"
expect "'decode.kv_rtol' must be a positive number or off, got 'loose'" "$TMP/e6.yaml"
echo "sweep model: ok"
