#!/usr/bin/env bash
# Hostile and corrupt dumps (issue: no crash, no memory blow-up): each must
# make inspect/run exit 1 with exactly one line naming the file and what is
# wrong, never a signal, and the huge-shape files must fail below 500 MB peak
# RSS. Usage: hostile_dumps.sh KVLAB_BIN SOURCE_DIR
set -u
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.bash" "$@"
PY=/usr/bin/python3
failures=0
if ! "$PY" -c "import h5py" 2>/dev/null; then
  echo "FAIL: /usr/bin/python3 has no h5py"
  exit 1
fi

# measured CMD...: runs CMD, leaves stderr in $TMP/err, sets rc and rss_mb (peak RSS).
measured() {
  read -r rc rss_mb < <("$PY" -c '
import resource, subprocess, sys
with open(sys.argv[1], "w") as err:
    rc = subprocess.run(sys.argv[2:], stdout=subprocess.DEVNULL, stderr=err).returncode
print(rc, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)
' "$TMP/err" "$@")
}

# expect_error NAME SUBCOMMAND FILE PATTERN...: `kvlab SUBCOMMAND FILE` fails cleanly, as described.
expect_error() {
  local name=$1 sub=$2 file=$3
  shift 3
  local args=(inspect "$file")
  [[ $sub == run ]] && args=(run -d "$file" -c kivi-2bit)
  measured "$KVLAB" "${args[@]}"
  local ok=1 lines
  lines=$(wc -l <"$TMP/err")
  [[ $rc -eq 1 ]] || { echo "FAIL $name ($sub): exit status $rc (1 expected; > 128 is a signal)"; ok=0; }
  [[ $lines -eq 1 ]] || { echo "FAIL $name ($sub): $lines lines on stderr"; ok=0; }
  [[ $rss_mb -lt 500 ]] || { echo "FAIL $name ($sub): peak RSS $rss_mb MB"; ok=0; }
  grep -qF -- "$file" "$TMP/err" || { echo "FAIL $name ($sub): message does not name $file"; ok=0; }
  for pattern in "$@"; do
    grep -qF -- "$pattern" "$TMP/err" || { echo "FAIL $name ($sub): message lacks '$pattern'"; ok=0; }
  done
  if [[ $ok -eq 1 ]]; then echo "ok   $name ($sub, ${rss_mb} MB): $(cat "$TMP/err")"; else cat "$TMP/err"; failures=$((failures + 1)); fi
}

"$KVLAB" synth "$TMP/good.h5" --preset tiny --seed 5 >/dev/null || { echo "FAIL: synth"; exit 1; }
"$PY" "$(dirname "${BASH_SOURCE[0]}")/lib/make_hostile_dumps.py" "$TMP/good.h5" "$TMP" || { echo "FAIL: generator"; exit 1; }
"$KVLAB" inspect "$TMP/good.h5" >/dev/null || { echo "FAIL: inspect of the good dump"; exit 1; }

for sub in inspect run; do
  expect_error vlen-length $sub "$TMP/vlen-length.h5" "root attribute 'format'" "stored length 1 differs"
  expect_error vlen-index $sub "$TMP/vlen-index.h5" "root attribute 'format'" "heap object 16385 not found"
done
for name in huge-kv-heads huge-seq-len huge-head-dim; do
  for sub in inspect run; do
    expect_error $name $sub "$TMP/$name.h5" "/layers/0/keys" "only 0 chunk(s) are written"
  done
done
expect_error external-link inspect "$TMP/external-link.h5" "/layers/1/values: is an external link to" "other.h5"
expect_error soft-link inspect "$TMP/soft-link.h5" "/layers/1/values: is a soft link to \"/layers/1/keys\""
expect_error group-for-dataset inspect "$TMP/group-for-dataset.h5" "/layers/0/queries: expected a dataset"
expect_error virtual inspect "$TMP/virtual.h5" "/layers/1/values: is a virtual dataset"
expect_error external-storage inspect "$TMP/external-storage.h5" "/layers/1/keys: keeps its data in 1 external file"
expect_error negative-token run "$TMP/negative-token.h5" "/tokens: token id -5 at position 17 is negative"
expect_error huge-token run "$TMP/huge-token.h5" "/tokens: token id 1099511627776 at position 3 is too large"

# An id below 2^31 but outside the model's vocabulary: the model refuses it.
if [[ -n "$SRC" && -f "$SRC/data/tiny-lm/model.h5" && -f "$SRC/data/shakespeare-a.kvdump.h5" ]]; then
  cp "$SRC/data/shakespeare-a.kvdump.h5" "$TMP/out-of-vocab.h5"
  "$PY" -c '
import sys, h5py
with h5py.File(sys.argv[1], "r+") as f:
    t = f["tokens"][...]; t[400] = 70000; f["tokens"][...] = t
' "$TMP/out-of-vocab.h5"
  measured "$KVLAB" --quiet decode --model "$SRC/data/tiny-lm/model.h5" --dump "$TMP/out-of-vocab.h5" -c kivi-2bit --steps 32
  if [[ $rc -eq 1 && $(wc -l <"$TMP/err") -eq 1 ]] && grep -qF "$TMP/out-of-vocab.h5: /tokens: token id 70000 out of range" "$TMP/err"; then
    echo "ok   out-of-vocab (decode): $(cat "$TMP/err")"
  else
    echo "FAIL out-of-vocab (decode): exit $rc: $(cat "$TMP/err")"
    failures=$((failures + 1))
  fi
fi

# A sweep over good and hostile dumps: the hostile dumps' jobs are marked
# failed with their one-line error, the good dump's job still runs, exit 1.
printf 'name: mixed\ndumps: [good.h5, vlen-length.h5, huge-seq-len.h5]\ncompressors: [kivi-2bit]\nout: mixed\n' >"$TMP/mixed.yaml"
measured "$KVLAB" --quiet sweep "$TMP/mixed.yaml"
summary="$TMP/mixed/summary.csv"
if [[ $rc -eq 1 && $rss_mb -lt 500 && -f $summary ]] && grep -q "^[0-9a-f]*,ok,,good.h5," "$summary" &&
   grep -qF ",failed,$TMP/vlen-length.h5: root attribute 'format': corrupt string" "$summary" &&
   grep -qF ",failed,\"$TMP/huge-seq-len.h5: /layers/0/keys: declares" "$summary"; then
  echo "ok   mixed sweep (${rss_mb} MB): good job ok, both hostile dumps failed in summary.csv"
else
  echo "FAIL mixed sweep: exit $rc, ${rss_mb} MB: $(cat "$TMP/err")"
  [[ -f $summary ]] && cut -c1-200 "$summary"
  failures=$((failures + 1))
fi

if [[ $failures -ne 0 ]]; then
  echo "$failures check(s) failed"
  exit 1
fi
echo "all hostile-dump checks passed"
