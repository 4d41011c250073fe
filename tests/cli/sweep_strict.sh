#!/usr/bin/env bash
# Hostile sweep files: duplicate keys, a name of ".." or with a newline, and
# an 8M-job Cartesian product must each exit 1 with one line naming the file,
# create no folder and write nothing, and stay small in memory.
# Usage: sweep_strict.sh KVLAB_BIN SOURCE_DIR
set -u
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.bash" "$@"
failures=0
KVLAB=$(realpath "$KVLAB")
mkdir -p "$TMP/work"
"$KVLAB" synth "$TMP/work/a.h5" --preset tiny --seed 1 >/dev/null || { echo "FAIL: synth"; exit 1; }

# expect_refused NAME YAML PATTERN...: `kvlab sweep` on YAML fails cleanly and leaves $TMP/work as it was.
expect_refused() {
  local name=$1 yaml=$2
  shift 2
  printf '%s' "$yaml" >"$TMP/work/$name.yaml"
  local before after rc rss_mb lines ok=1
  before=$(cd "$TMP/work" && find . | sort)
  read -r rc rss_mb < <(cd "$TMP/work" && /usr/bin/python3 -c '
import resource, subprocess, sys
with open(sys.argv[1], "w") as err:
    rc = subprocess.run(sys.argv[2:], stdout=subprocess.DEVNULL, stderr=err).returncode
print(rc, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)
' "$TMP/err" "$KVLAB" sweep --quiet "$name.yaml")
  after=$(cd "$TMP/work" && find . | sort)
  lines=$(wc -l <"$TMP/err")
  [[ $rc -eq 1 ]] || { echo "FAIL $name: exit status $rc"; ok=0; }
  [[ $lines -eq 1 ]] || { echo "FAIL $name: $lines lines on stderr"; ok=0; }
  [[ $rss_mb -lt 500 ]] || { echo "FAIL $name: peak RSS $rss_mb MB"; ok=0; }
  [[ "$before" == "$after" ]] || { echo "FAIL $name: files appeared: $(diff <(echo "$before") <(echo "$after") | tr '\n' ' ')"; ok=0; }
  grep -qF -- "$name.yaml" "$TMP/err" || { echo "FAIL $name: message does not name the file"; ok=0; }
  for pattern in "$@"; do
    grep -qF -- "$pattern" "$TMP/err" || { echo "FAIL $name: message lacks '$pattern'"; ok=0; }
  done
  if [[ $ok -eq 1 ]]; then echo "ok   $name (${rss_mb} MB): $(cat "$TMP/err")"; else cat "$TMP/err"; failures=$((failures + 1)); fi
}

expect_refused duplicate-key $'name: a\ndumps: [a.h5]\ncompressors: [kivi-2bit]\ndumps: [b.h5]\n' \
  "line 4: duplicate key 'dumps' (first at line 2)"
expect_refused dot-dot $'name: ".."\ndumps: [a.h5]\ncompressors: [kivi-2bit]\n' "'name' \"..\""
expect_refused newline $'name: "evil\\nname"\ndumps: [a.h5]\ncompressors: [kivi-2bit]\n' \
  "line 1: control character in \"evil\\nname\""
axis="[$(seq -s ', ' 1 200)]"
expect_refused eight-million "name: big
dumps: [a.h5]
compressors:
  - {method: kivi, bits: $axis, group: $axis, residual: $axis}
" "compressors[0]" "expand to 8000000 specs (bits: 200 x group: 200 x residual: 200), more than max_jobs = 100000"

if [[ $failures -ne 0 ]]; then
  echo "$failures check(s) failed"
  exit 1
fi
echo "all strict-sweep checks passed"
