#!/usr/bin/env bash
# `kvlab regress` passes on the committed baselines and bites: a perturbed
# baseline value or a perturbed method parameter fails with the right rows.
set -u
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.bash" "$@"

"$KVLAB" regress -q --config "$SRC/data/regress.yaml" >"$TMP/out" || { cat "$TMP/out"; fail "committed baseline does not pass"; }

# Copy the config next to the dumps' copies so relative paths still resolve.
mkdir -p "$TMP/data/baselines"
cp "$SRC"/data/*.kvdump.h5 "$TMP/data/"
cp "$SRC/data/regress.yaml" "$TMP/data/"
cp "$SRC/data/baselines/regress.csv" "$TMP/data/baselines/"

# 1. A perturbed baseline value.
sed -i 's/^real-kivi-2bit,v_rel_err_global,0\.\([0-9]\)/real-kivi-2bit,v_rel_err_global,0.9/' "$TMP/data/baselines/regress.csv"
"$KVLAB" regress -q --config "$TMP/data/regress.yaml" >"$TMP/out" 2>"$TMP/err" && fail "perturbed baseline passed"
grep -q "real-kivi-2bit *v_rel_err_global" "$TMP/out" || { cat "$TMP/out"; fail "row for the perturbed value missing"; }
[ "$(grep -c '^real-\|^synth-' "$TMP/out")" -eq 1 ] || { cat "$TMP/out"; fail "expected exactly one failing row"; }
grep -q "outside tolerance" "$TMP/err" || fail "no error line"

# 2. A perturbed method parameter: bits change exactly, errors too.
cp "$SRC/data/baselines/regress.csv" "$TMP/data/baselines/"
sed -i 's/compressor: gear-2bit, eval_every: 8/compressor: "gear-2bit:rank=2", eval_every: 8/' "$TMP/data/regress.yaml"
"$KVLAB" regress -q --config "$TMP/data/regress.yaml" >"$TMP/out" 2>&1 && fail "perturbed parameter passed"
grep -q "synth-gear-2bit *bits_lowrank" "$TMP/out" || { cat "$TMP/out"; fail "bits_lowrank row missing"; }
grep -q "synth-gear-2bit *compressed_bits" "$TMP/out" || fail "compressed_bits row missing"
if grep -q "^real-" "$TMP/out"; then fail "unrelated cases reported"; fi

# 3. --update rewrites the baseline explicitly, then it passes.
"$KVLAB" regress -q --update --config "$TMP/data/regress.yaml" >"$TMP/out" || fail "update failed"
grep -q "value(s) changed" "$TMP/out" || fail "update did not report changes"
"$KVLAB" regress -q --config "$TMP/data/regress.yaml" >/dev/null || fail "updated baseline does not pass"
echo "regress: ok"
