#!/usr/bin/env bash
# kvlab synth tiny → kvlab inspect succeeds and prints the shapes and the
# per-layer table (also as CSV). Usage: synth_inspect.sh KVLAB_BIN SOURCE_DIR
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.bash" "$@"

"$KVLAB" synth "$TMP/tiny.h5" --preset tiny --seed 1 >"$TMP/synth.out"
grep -q "wrote $TMP/tiny.h5" "$TMP/synth.out" || fail "synth did not report the file: $(cat "$TMP/synth.out")"
[[ $(wc -l <"$TMP/synth.out") -eq 1 ]] || fail "synth printed more than one line"

"$KVLAB" inspect "$TMP/tiny.h5" --csv "$TMP/layers.csv" >"$TMP/inspect.out" 2>"$TMP/inspect.err"
cat "$TMP/inspect.out"
[[ ! -s "$TMP/inspect.err" ]] || fail "inspect wrote to stderr: $(cat "$TMP/inspect.err")"
grep -q "2 layers, 4 heads, 2 kv heads" "$TMP/inspect.out" || fail "shape line missing"
grep -q "head_dim 32" "$TMP/inspect.out" || fail "head_dim missing"
grep -q "seq_len 256, prompt_len 128" "$TMP/inspect.out" || fail "sequence line missing"
grep -q "\[2, 256, 32\] per layer" "$TMP/inspect.out" || fail "keys/values shape missing"
grep -q "\[4, 256, 32\] per layer" "$TMP/inspect.out" || fail "queries shape missing"
grep -q "float16" "$TMP/inspect.out" || fail "dtype missing"
grep -q "neox, theta 10000" "$TMP/inspect.out" || fail "rope missing"
grep -Eq "^ +1 +[0-9.]+ +[0-9.]+" "$TMP/inspect.out" || fail "per-layer row for layer 1 missing"
[[ $(wc -l <"$TMP/layers.csv") -eq 3 ]] || fail "CSV should have a header and 2 rows"
head -1 "$TMP/layers.csv" | grep -q "^dump,layer,key_norm" || fail "CSV header"

# Layer selection, --no-stats, float32 / no-queries / no-rope variants.
"$KVLAB" inspect "$TMP/tiny.h5" --layers 1 | grep -Eq "^ +1 " || fail "--layers 1"
if "$KVLAB" inspect "$TMP/tiny.h5" --layers 5 2>"$TMP/err"; then fail "--layers 5 accepted"; fi
grep -q "layer 5 out of range" "$TMP/err" || fail "--layers 5 message: $(cat "$TMP/err")"
"$KVLAB" synth "$TMP/v.h5" --tokens 64 --prompt 16 --float32 --no-queries --no-rope --kv-heads 1 >/dev/null
"$KVLAB" inspect "$TMP/v.h5" --no-stats >"$TMP/v.out"
grep -q "float32" "$TMP/v.out" || fail "float32 dtype"
grep -q "queries      none" "$TMP/v.out" || fail "no queries"
grep -q "rope         not recorded" "$TMP/v.out" || fail "no rope"
grep -q "4 heads, 1 kv heads (GQA group 4)" "$TMP/v.out" || fail "GQA override"
if "$KVLAB" synth "$TMP/x.h5" --heads 6 --kv-heads 4 2>"$TMP/err"; then fail "bad GQA accepted"; fi
grep -q -- "--kv-heads" "$TMP/err" || fail "bad GQA message: $(cat "$TMP/err")"
echo "synth → inspect ok"
