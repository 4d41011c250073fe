#!/usr/bin/env bash
# `kvlab regress` passes on the committed baselines and bites: a perturbed
# baseline value or a perturbed method parameter fails with the right rows.
set -u
KVLAB=$1
SRC=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$KVLAB" regress -q --config "$SRC/data/regress.yaml" >"$dir/out" || { cat "$dir/out"; fail "committed baseline does not pass"; }

# Copy the config next to the dumps' copies so relative paths still resolve.
mkdir -p "$dir/data/baselines"
cp "$SRC"/data/*.kvdump.h5 "$dir/data/"
cp "$SRC/data/regress.yaml" "$dir/data/"
cp "$SRC/data/baselines/regress.csv" "$dir/data/baselines/"

# 1. A perturbed baseline value.
sed -i 's/^real-kivi-2bit,v_rel_err_global,0\.\([0-9]\)/real-kivi-2bit,v_rel_err_global,0.9/' "$dir/data/baselines/regress.csv"
"$KVLAB" regress -q --config "$dir/data/regress.yaml" >"$dir/out" 2>"$dir/err" && fail "perturbed baseline passed"
grep -q "real-kivi-2bit *v_rel_err_global" "$dir/out" || { cat "$dir/out"; fail "row for the perturbed value missing"; }
[ "$(grep -c '^real-\|^synth-' "$dir/out")" -eq 1 ] || { cat "$dir/out"; fail "expected exactly one failing row"; }
grep -q "outside tolerance" "$dir/err" || fail "no error line"

# 2. A perturbed method parameter: bits change exactly, errors too.
cp "$SRC/data/baselines/regress.csv" "$dir/data/baselines/"
sed -i 's/compressor: gear-2bit, eval_every: 8/compressor: "gear-2bit:rank=2", eval_every: 8/' "$dir/data/regress.yaml"
"$KVLAB" regress -q --config "$dir/data/regress.yaml" >"$dir/out" 2>&1 && fail "perturbed parameter passed"
grep -q "synth-gear-2bit *bits_lowrank" "$dir/out" || { cat "$dir/out"; fail "bits_lowrank row missing"; }
grep -q "synth-gear-2bit *compressed_bits" "$dir/out" || fail "compressed_bits row missing"
if grep -q "^real-" "$dir/out"; then fail "unrelated cases reported"; fi

# 3. --update rewrites the baseline explicitly, then it passes.
"$KVLAB" regress -q --update --config "$dir/data/regress.yaml" >"$dir/out" || fail "update failed"
grep -q "value(s) changed" "$dir/out" || fail "update did not report changes"
"$KVLAB" regress -q --config "$dir/data/regress.yaml" >/dev/null || fail "updated baseline does not pass"
echo "regress: ok"
