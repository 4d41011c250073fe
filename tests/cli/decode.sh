#!/usr/bin/env bash
# kvlab decode end to end: a tiny random kvlab-model written by h5py (so the
# test always runs), teacher and free mode, CSV shape, fp16 exactness, errors;
# then the bundled model + dump when present.
# $1 = kvlab binary, $2 = source dir.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.bash" "$@"
PY=/usr/bin/python3

if ! $PY -c "import h5py, numpy" 2>/dev/null; then
  echo "SKIP: /usr/bin/python3 lacks h5py/numpy"
  exit 0
fi

$PY - "$TMP/model.h5" "$TMP/tokens.txt" <<'PYEOF'
import sys
import h5py
import numpy as np
rng = np.random.default_rng(0)
L, D, H, KV, hd, F, V = 2, 32, 4, 2, 8, 48, 40
with h5py.File(sys.argv[1], "w") as f:
    for k, v in dict(format="kvlab-model", architecture="llama", rope_style="gptj", model="cli-test").items():
        f.attrs[k] = v
    for k, v in dict(version=1, num_layers=L, hidden_size=D, num_heads=H, num_kv_heads=KV, head_dim=hd,
                     intermediate_size=F, vocab_size=V, tie_word_embeddings=1).items():
        f.attrs[k] = np.int64(v)
    f.attrs["rope_theta"] = 10000.0
    f.attrs["rms_norm_eps"] = 1e-5
    w = lambda o, i: (rng.standard_normal((o, i)) / np.sqrt(i)).astype(np.float16)
    f["embed_tokens"] = rng.standard_normal((V, D)).astype(np.float16)
    for l in range(L):
        g = f"layers/{l}/"
        f[g + "input_layernorm"] = np.ones(D, np.float32)
        f[g + "post_attention_layernorm"] = np.ones(D, np.float32)
        f[g + "q_proj"] = w(H * hd, D) * 2
        f[g + "k_proj"] = w(KV * hd, D) * 2
        f[g + "v_proj"] = w(KV * hd, D)
        f[g + "k_proj_bias"] = (0.1 * rng.standard_normal(KV * hd)).astype(np.float32)
        f[g + "o_proj"] = w(D, H * hd)
        f[g + "gate_proj"] = w(F, D)
        f[g + "up_proj"] = w(F, D)
        f[g + "down_proj"] = w(D, F)
    f["norm"] = np.ones(D, np.float32)
with open(sys.argv[2], "w") as t:
    t.write(" ".join(str(x) for x in rng.integers(0, V, 48)) + "\n")
PYEOF

# Teacher mode, fp16: exact.
out=$("$KVLAB" decode --model "$TMP/model.h5" --tokens "$TMP/tokens.txt" --compressor fp16 --prompt-len 16 \
      --csv "$TMP/fp16.csv" -j 2)
echo "$out"
grep -q "ratio comp/ref 1.00000" <<<"$out" || fail "fp16 perplexity ratio is not 1"
grep -q "top-1 agreement 1.0000" <<<"$out" || fail "fp16 top-1 agreement is not 1"
lines=$(wc -l <"$TMP/fp16.csv")
[ "$lines" -eq 33 ] || fail "fp16.csv: expected 33 lines (header + 32 steps), found $lines"
head -1 "$TMP/fp16.csv" | grep -q "^job_id,dump,compressor,mode,seed,step,position,token_ref,token_comp,target,top1_ref,top1_comp,shared_context,top1_agree,kl,hidden_rel,ce_ref,ce_comp,attn_rel_mean,compression_ratio,attn_rel_layer0,attn_rel_layer1$" \
  || fail "unexpected CSV header: $(head -1 "$TMP/fp16.csv")"
$PY - "$TMP/fp16.csv" <<'PYEOF' || fail "fp16.csv content"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
assert all(float(r["kl"]) == 0.0 and r["top1_agree"] == "1" for r in rows), "fp16 not exact"
PYEOF

# Teacher mode, 2-bit: drifts, and the thread count does not change a byte.
"$KVLAB" decode --model "$TMP/model.h5" --tokens "$TMP/tokens.txt" --compressor uniform-2bit:group=8 \
  --prompt-len 16 --csv "$TMP/u1.csv" -j 1 >/dev/null
"$KVLAB" decode --model "$TMP/model.h5" --tokens "$TMP/tokens.txt" --compressor uniform-2bit:group=8 \
  --prompt-len 16 --csv "$TMP/u3.csv" -j 3 >/dev/null
cmp -s "$TMP/u1.csv" "$TMP/u3.csv" || fail "results depend on the thread count"
$PY - "$TMP/u1.csv" <<'PYEOF' || fail "2-bit run shows no error"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
assert sum(float(r["kl"]) for r in rows) > 0
PYEOF

# Free mode.
out=$("$KVLAB" decode --model "$TMP/model.h5" --tokens "$TMP/tokens.txt" --compressor uniform-2bit:group=8 \
      --prompt-len 16 --mode free --steps 24)
grep -Eq "steps to first divergence ([0-9]+|≥ 24 \(never diverged\)) of 24" <<<"$out" || fail "free mode summary missing"
grep -q "the model file has no vocabulary" <<<"$out" || fail "free mode without a vocabulary should say so"

# Several compressors and seeds against one reference: per-sample rows, one CSV, the mean with its interval.
out=$("$KVLAB" decode --model "$TMP/model.h5" --tokens "$TMP/tokens.txt" -c fp16 -c uniform-2bit:group=8 \
      -c kivi:bits=2,group=8,residual=8 --seed 0 --seed 5 --prompt-len 16 --csv "$TMP/multi.csv" -q)
echo "$out"
[ "$(grep -c "^tokens.txt " <<<"$out")" -eq 6 ] || fail "expected 6 per-sample rows (3 compressors x 2 seeds)"
grep -q "Student t, dumps − 1 degrees of freedom" <<<"$out" || fail "aggregate table missing"
[ "$(wc -l <"$TMP/multi.csv")" -eq $((1 + 6 * 32)) ] || fail "multi.csv: expected 1 + 6 x 32 lines"
$PY - "$TMP/multi.csv" "$TMP/u1.csv" <<'PYEOF' || fail "multi.csv content"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
assert {r["seed"] for r in rows} == {"0", "5"}
assert all(float(r["kl"]) == 0 for r in rows if r["compressor"] == "fp16")
# The shared reference gives exactly the numbers of a separate run.
alone = [r["kl"] for r in csv.DictReader(open(sys.argv[2]))]
shared = [r["kl"] for r in rows if r["compressor"].startswith("uniform") and r["seed"] == "0"]
assert alone == shared, (alone[:3], shared[:3])
PYEOF

# Errors are one line and name the problem.
set +e
err=$("$KVLAB" decode --model "$TMP/nope.h5" --tokens "$TMP/tokens.txt" --compressor fp16 2>&1); rc=$?
set -e
[ $rc -ne 0 ] && grep -q "nope.h5: no such file" <<<"$err" || fail "missing model: $err"
set +e
err=$("$KVLAB" decode --model "$TMP/model.h5" --tokens "$TMP/tokens.txt" --compressor fp16 --steps 999 2>&1); rc=$?
set -e
[ $rc -ne 0 ] && grep -q "exceeds the 24 recorded tokens" <<<"$err" || fail "too many steps: $err"
echo "0 1 2 99" >"$TMP/bad_tokens.txt"
set +e
err=$("$KVLAB" decode --model "$TMP/model.h5" --tokens "$TMP/bad_tokens.txt" --compressor fp16 2>&1); rc=$?
set -e
[ $rc -ne 0 ] && grep -q "token id 99 out of range" <<<"$err" || fail "bad token: $err"

# The bundled model and dump, when present (short run).
if [ -f "$SRC/data/tiny-lm/model.h5" ] && [ -f "$SRC/data/shakespeare-a.kvdump.h5" ]; then
  out=$("$KVLAB" decode --model "$SRC/data/tiny-lm/model.h5" --dump "$SRC/data/shakespeare-a.kvdump.h5" \
        --compressor fp16 --steps 32 -j 2)
  echo "$out"
  grep -Eq "K/V vs dump: max rel [0-9.e+-]+ \((keys|values) layer [0-9]\), tol 0.01: ok \(416 positions\)" <<<"$out" \
    || fail "bundled: kv check line missing"
  grep -q "ratio comp/ref 1.00000" <<<"$out" || fail "bundled: fp16 not exact"
  # A mismatch beyond the tolerance is an error, not ignored.
  set +e
  err=$("$KVLAB" decode --model "$SRC/data/tiny-lm/model.h5" --dump "$SRC/data/shakespeare-a.kvdump.h5" \
        --compressor fp16 --steps 2 --kv-rtol 1e-6 2>&1); rc=$?
  set -e
  [ $rc -ne 0 ] && grep -q "differ from the dump: relative norm .* over positions \[0, 384) exceeds the tolerance 1e-06" \
    <<<"$err" || fail "kv mismatch: $err"
  # Two dumps, free mode: the byte-level vocabulary prints both generations side by side.
  out=$("$KVLAB" decode --model "$SRC/data/tiny-lm/model.h5" -d "$SRC/data/shakespeare-a.kvdump.h5" \
        -d "$SRC/data/shakespeare-b.kvdump.h5" -c kivi-2bit --mode free --steps 24 -q)
  echo "$out"
  grep -q "reference (fp16 cache) *│ compressed (kivi-2bit)" <<<"$out" || fail "side-by-side generations missing"
  grep -q "^kivi-2bit *2 " <<<"$out" || fail "aggregate over 2 dumps missing"
else
  echo "SKIP: bundled model/dump not present"
fi
echo "OK"
