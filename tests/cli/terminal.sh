#!/usr/bin/env bash
# What the terminal shows: short labels and a footer in `kvlab run`, the
# inspect legend, defaults in --help, suggestions for mistyped commands and
# options, plain progress lines when stderr is not a terminal, regress -v.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.bash" "$@"
DUMP="$SRC/data/shakespeare-a.kvdump.h5"

out=$("$KVLAB" run -d "$DUMP" -c kivi-2bit -c gear-2bit:rank=8 --layers 0 --eval-every 64 2>/dev/null)
grep -q "^kivi-2bit " <<<"$out" || fail "the preset name should label its row: $out"
grep -q "^gear rank=8 " <<<"$out" || fail "a non-preset spec shows only what differs: $out"
grep -q "means over query heads, layers and" <<<"$out" || fail "no footer saying what the numbers are"
grep -q "gear rank=8 = gear:bits=2" <<<"$out" || fail "the full spec of a short label is listed"

"$KVLAB" inspect "$DUMP" --layers 0 2>/dev/null | grep -q "K/V outlier: max over channels" || fail "inspect legend"
"$KVLAB" run --help | grep -q -- "--eval-every INT:NONNEGATIVE=1" || fail "--help does not show defaults"

set +e
err=$("$KVLAB" runn 2>&1 >/dev/null); rc=$?
set -e
[ "$rc" -ne 0 ] || fail "an unknown command succeeded"
grep -q "unknown command 'runn' (did you mean 'run'?)" <<<"$err" || fail "no suggestion: $err"
[ "$(wc -l <<<"$err")" -eq 1 ] || fail "more than one line: $err"
set +e
err=$("$KVLAB" run -d "$DUMP" -c kivi --eval_every 8 2>&1 >/dev/null); rc=$?
set -e
[ "$rc" -ne 0 ] || fail "an unknown option succeeded"
grep -q "unknown option '--eval_every' for run (did you mean '--eval-every'?)" <<<"$err" || fail "no suggestion: $err"

# stderr is a file here, not a terminal: plain progress lines, periodically.
KVLAB_PROGRESS_INTERVAL=0.01 "$KVLAB" run -d "$DUMP" -c kivi-2bit --eval-every 1 >/dev/null 2>"$TMP/progress"
grep -q "blocks .*elapsed" "$TMP/progress" || fail "no progress line without a terminal: $(cat "$TMP/progress")"
grep -q $'\r' "$TMP/progress" && fail "carriage returns in a non-terminal progress log"
KVLAB_PROGRESS_INTERVAL=0.01 "$KVLAB" --quiet run -d "$DUMP" -c kivi-2bit >/dev/null 2>"$TMP/quiet"
[ ! -s "$TMP/quiet" ] || fail "--quiet printed progress: $(cat "$TMP/quiet")"

"$KVLAB" --quiet regress -c "$SRC/data/regress.yaml" --verbose -j 2 >"$TMP/regress" || fail "regress -v"
grep -q "^real-kivi-2bit .*compression_ratio .* ok$" "$TMP/regress" || fail "regress -v lists each comparison"
echo "terminal: ok"
