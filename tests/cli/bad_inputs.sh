#!/usr/bin/env bash
# kvlab inspect on broken dumps: each must exit non-zero with exactly one line
# on stderr that names the file and the dataset/reason, and no HDF5 error
# stack. Usage: bad_inputs.sh KVLAB_BIN SOURCE_DIR
set -u
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.bash" "$@"
PY=/usr/bin/python3
failures=0

# expect_failure NAME FILE PATTERN...: inspect FILE must fail as described.
expect_failure() {
  local name=$1 file=$2
  shift 2
  "$KVLAB" inspect "$file" >"$TMP/out" 2>"$TMP/err"
  local rc=$? lines
  lines=$(wc -l <"$TMP/err")
  local ok=1
  [[ $rc -ne 0 ]] || { echo "FAIL $name: exit status 0"; ok=0; }
  [[ $lines -eq 1 ]] || { echo "FAIL $name: $lines lines on stderr"; ok=0; }
  if grep -q "HDF5-DIAG" "$TMP/err"; then echo "FAIL $name: HDF5 error stack printed"; ok=0; fi
  grep -qF -- "$file" "$TMP/err" || { echo "FAIL $name: message does not name $file"; ok=0; }
  for pattern in "$@"; do
    grep -qF -- "$pattern" "$TMP/err" || { echo "FAIL $name: message lacks '$pattern'"; ok=0; }
  done
  if [[ $ok -eq 1 ]]; then echo "ok   $name: $(cat "$TMP/err")"; else cat "$TMP/err"; failures=$((failures + 1)); fi
}

# h5py edits a copy of a good dump: mutate NAME CODE (CODE sees `f`, opened r+).
mutate() {
  local name=$1 code=$2
  cp "$TMP/good.h5" "$TMP/$name.h5"
  "$PY" -c "
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], 'r+')
$code
f.close()
" "$TMP/$name.h5" || { echo "FAIL $name: h5py could not build the test file"; failures=$((failures + 1)); }
}

"$KVLAB" synth "$TMP/good.h5" --preset tiny --seed 5 >/dev/null || { echo "FAIL: synth"; exit 1; }
"$KVLAB" inspect "$TMP/good.h5" >/dev/null || { echo "FAIL: inspect of a good dump"; exit 1; }

echo "definitely not HDF5" >"$TMP/text.h5"
expect_failure not-hdf5 "$TMP/text.h5" "not an HDF5 file"

size=$(stat -c %s "$TMP/good.h5")
head -c $((size / 2)) "$TMP/good.h5" >"$TMP/truncated.h5"
expect_failure truncated "$TMP/truncated.h5" "truncated"

expect_failure missing "$TMP/does-not-exist.h5" "no such file"

if "$PY" -c "import h5py" 2>/dev/null; then
  mutate no-values "del f['layers/1/values']"
  expect_failure missing-dataset "$TMP/no-values.h5" "/layers/1/values" "missing dataset"

  mutate wrong-shape "k = f['layers/0/keys'][...]; del f['layers/0/keys']; f['layers/0/keys'] = k[:, :, :16]"
  expect_failure wrong-shape "$TMP/wrong-shape.h5" "/layers/0/keys" "expected shape [2, 256, 32]" "found [2, 256, 16]"

  mutate nan-keys "k = f['layers/1/keys']; a = k[...]; a[1, 7, 3] = np.nan; k[...] = a"
  expect_failure nan-keys "$TMP/nan-keys.h5" "/layers/1/keys" "nan" "[head 1, token 7, channel 3]"

  mutate bad-format "f.attrs['format'] = 'kvcache'"
  expect_failure bad-format "$TMP/bad-format.h5" "'format'" "kvcache"

  mutate version2 "f.attrs['version'] = np.int32(2)"
  expect_failure version2 "$TMP/version2.h5" "'version'" "found 2"
else
  echo "FAIL: /usr/bin/python3 has no h5py"
  failures=$((failures + 1))
fi

if [[ $failures -ne 0 ]]; then
  echo "$failures check(s) failed"
  exit 1
fi
echo "all bad-input checks passed"
