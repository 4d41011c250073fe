#!/usr/bin/env bash
# Dumps carrying the optional attention description (tools/make_attention_fixtures.py,
# made here with Debian's python3): `kvlab inspect` prints it, `kvlab run`
# replays RoPE-undoing and attention-scoring methods on it, and the C++
# comparisons with the NumPy references pass on these very files.
# Usage: attention_fixtures.sh KVLAB_BIN SOURCE_DIR
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.bash" "$@"

/usr/bin/python3 "$SRC/tools/make_attention_fixtures.py" --out "$TMP" >/dev/null || fail "fixture generator"
DUMP=$TMP/attention-neox.kvdump.h5

"$KVLAB" inspect "$DUMP" --no-stats >"$TMP/inspect.out" 2>"$TMP/inspect.err" || fail "inspect: $(cat "$TMP/inspect.err")"
cat "$TMP/inspect.out"
grep -q "rope         neox, inv_freq \[0.9, 0.23, 0.017\], rotary_dim 6 of 8, attention scaling 1.25" "$TMP/inspect.out" \
  || fail "rope line"
grep -q "layer 1     inv_freq \[1.7, 0.4, 0.05\]" "$TMP/inspect.out" || fail "layer 1 frequencies"
grep -q "layer 2     attention scaling 1" "$TMP/inspect.out" || fail "layer 2 scaling"
grep -q "attention    scale 0.3 (attn_scale), logit soft-cap 2, sliding window (layer: W) 0: 4, 2: 1, 3: 15" \
  "$TMP/inspect.out" || fail "attention line"

# Methods that undo RoPE (kvquant, skvq, expected-attention) and
# that score with attention (h2o, snapkv, tova) run on every layer of it.
"$KVLAB" run -q -d "$DUMP" -c fp16 -c kvquant:bits=3,buffer=2 -c h2o:heavy_tokens=2,recent_tokens=2 \
  -c snapkv:capacity=4,window=2,kernel=1 -c tova:keep_tokens=4 -c expected-attention:keep_tokens=4,sinks=1 \
  -c skvq:window=2,sinks=1 --csv "$TMP/out" >/dev/null 2>"$TMP/err" \
  || fail "run: $(cat "$TMP/err")"
[[ $(wc -l <"$TMP/out/summary.csv") -eq 8 ]] || fail "summary.csv should have 7 rows: $(cat "$TMP/out/summary.csv")"

KVLAB_ATTENTION_FIXTURES=$TMP "$(dirname "$KVLAB")/tests/kvlab_tests" "[attention_fixtures]" >"$TMP/catch.out" \
  || { cat "$TMP/catch.out"; fail "C++ fixture tests"; }
echo "attention fixtures ok"
