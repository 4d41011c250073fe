#!/usr/bin/env bash
# kvlab synth tiny → kvlab inspect succeeds and prints the shapes and the
# per-layer table (also as CSV). Usage: synth_inspect.sh KVLAB_BIN SOURCE_DIR
set -euo pipefail
KVLAB=${1:?usage: synth_inspect.sh KVLAB_BIN SOURCE_DIR}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

fail() { echo "FAIL: $*"; exit 1; }

"$KVLAB" synth "$WORK/tiny.h5" --preset tiny --seed 1 >"$WORK/synth.out"
grep -q "wrote $WORK/tiny.h5" "$WORK/synth.out" || fail "synth did not report the file: $(cat "$WORK/synth.out")"
[[ $(wc -l <"$WORK/synth.out") -eq 1 ]] || fail "synth printed more than one line"

"$KVLAB" inspect "$WORK/tiny.h5" --csv "$WORK/layers.csv" >"$WORK/inspect.out" 2>"$WORK/inspect.err"
cat "$WORK/inspect.out"
[[ ! -s "$WORK/inspect.err" ]] || fail "inspect wrote to stderr: $(cat "$WORK/inspect.err")"
grep -q "2 layers, 4 heads, 2 kv heads" "$WORK/inspect.out" || fail "shape line missing"
grep -q "head_dim 32" "$WORK/inspect.out" || fail "head_dim missing"
grep -q "seq_len 256, prompt_len 128" "$WORK/inspect.out" || fail "sequence line missing"
grep -q "\[2, 256, 32\] per layer" "$WORK/inspect.out" || fail "keys/values shape missing"
grep -q "\[4, 256, 32\] per layer" "$WORK/inspect.out" || fail "queries shape missing"
grep -q "float16" "$WORK/inspect.out" || fail "dtype missing"
grep -q "neox, theta 10000" "$WORK/inspect.out" || fail "rope missing"
grep -Eq "^ +1 +[0-9.]+ +[0-9.]+" "$WORK/inspect.out" || fail "per-layer row for layer 1 missing"
[[ $(wc -l <"$WORK/layers.csv") -eq 3 ]] || fail "CSV should have a header and 2 rows"
head -1 "$WORK/layers.csv" | grep -q "^dump,layer,key_norm" || fail "CSV header"

# Layer selection, --no-stats, float32 / no-queries / no-rope variants.
"$KVLAB" inspect "$WORK/tiny.h5" --layers 1 | grep -Eq "^ +1 " || fail "--layers 1"
if "$KVLAB" inspect "$WORK/tiny.h5" --layers 5 2>"$WORK/err"; then fail "--layers 5 accepted"; fi
grep -q "layer 5 out of range" "$WORK/err" || fail "--layers 5 message: $(cat "$WORK/err")"
"$KVLAB" synth "$WORK/v.h5" --tokens 64 --prompt 16 --float32 --no-queries --no-rope --kv-heads 1 >/dev/null
"$KVLAB" inspect "$WORK/v.h5" --no-stats >"$WORK/v.out"
grep -q "float32" "$WORK/v.out" || fail "float32 dtype"
grep -q "queries      none" "$WORK/v.out" || fail "no queries"
grep -q "rope         not recorded" "$WORK/v.out" || fail "no rope"
grep -q "4 heads, 1 kv heads (GQA group 4)" "$WORK/v.out" || fail "GQA override"
if "$KVLAB" synth "$WORK/x.h5" --heads 6 --kv-heads 4 2>"$WORK/err"; then fail "bad GQA accepted"; fi
grep -q -- "--kv-heads" "$WORK/err" || fail "bad GQA message: $(cat "$WORK/err")"
echo "synth → inspect ok"
