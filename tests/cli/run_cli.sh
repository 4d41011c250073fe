#!/usr/bin/env bash
# `kvlab run` and `kvlab list`: bad specs and inputs fail with one clear line;
# CSV is byte-identical for --threads 1 and 2; every subcommand has --help.
set -u
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.bash" "$@"
DUMP=$SRC/data/shakespeare-a.kvdump.h5

# expect_error "substring" args...: non-zero exit, exactly one stderr line containing substring
expect_error() {
  local want=$1; shift
  "$KVLAB" "$@" >"$TMP/out" 2>"$TMP/err" && fail "'$*' succeeded"
  [ "$(wc -l < "$TMP/err")" -eq 1 ] || { cat "$TMP/err"; fail "'$*': expected one line on stderr"; }
  grep -qF -- "$want" "$TMP/err" || fail "'$*': message '$(cat "$TMP/err")' lacks '$want'"
}

expect_error "unknown compressor 'kivvi' (did you mean 'kivi'?)" run -d "$DUMP" -c kivvi
expect_error "unknown parameter 'bitz' for kivi (did you mean 'bits'?)" run -d "$DUMP" -c kivi:bitz=2
expect_error "parameter 'bits' = 12 is out of range [1, 8]" run -d "$DUMP" -c kivi:bits=12
expect_error "residual (100) must be a multiple of group (32)" run -d "$DUMP" -c kivi:residual=100
expect_error "no_such.h5" run -d "$TMP/no_such.h5" -c fp16
expect_error "layer 9 is out of range" run -d "$DUMP" -c fp16 --layers 9
expect_error "--layers: 'x' is not a non-negative integer" run -d "$DUMP" -c fp16 --layers x
expect_error "unknown compressor 'nope'" list nope

# Determinism: byte-identical CSV for 1 and 2 threads.
SPECS=(-c fp16 -c kivi-2bit -c gear-2bit -c h2o-20pct -c snapkv:capacity=128 -c qjl-256 -c kvquant-nuq3-1pct)
"$KVLAB" run -q -d "$DUMP" "${SPECS[@]}" --eval-every 16 -j 1 --csv "$TMP/t1" >/dev/null || fail "run -j 1"
"$KVLAB" run -q -d "$DUMP" "${SPECS[@]}" --eval-every 16 -j 2 --csv "$TMP/t2" >/dev/null || fail "run -j 2"
for f in summary layers steps; do
  cmp -s "$TMP/t1/$f.csv" "$TMP/t2/$f.csv" || fail "$f.csv differs between --threads 1 and 2"
done
[ "$(($(wc -l < "$TMP/t1/summary.csv") - 1))" -eq 7 ] || fail "expected 7 summary rows"

# --layers / --max-steps / --eval-every shape the replay.
"$KVLAB" run -q -d "$DUMP" -c kivi-2bit --layers 1-2 --max-steps 40 --eval-every 10 --csv "$TMP/s" >/dev/null || fail "limited run"
[ "$(($(wc -l < "$TMP/s/layers.csv") - 1))" -eq 8 ] || fail "2 layers x 2 heads x K,V = 8 layer rows expected"
[ "$(($(wc -l < "$TMP/s/steps.csv") - 1))" -eq 5 ] || fail "steps 0,10,20,30,40 expected"
grep -q "^.*,kivi,quant,.*,2,2,424,384,40,5," "$TMP/s/summary.csv" || fail "summary shape columns: $(sed -n 2p "$TMP/s/summary.csv")"

# list shows every family and the presets; each subcommand has --help.
"$KVLAB" list >"$TMP/list" || fail list
for m in fp16 uniform kcvt kivi gear gear-l outlier-quant kvquant qjl h2o streaming snapkv pyramidkv gear-2bit kivi-2bit; do
  grep -q "$m" "$TMP/list" || fail "list lacks $m"
done
for c in run list inspect synth sweep regress decode; do
  "$KVLAB" $c --help >/dev/null || fail "$c --help"
done
echo "run cli: ok"
