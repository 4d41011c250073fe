#!/usr/bin/env bash
# The result columns are declared once: the committed schema file and the
# tables of docs/outputs.md must equal `kvlab schema`, and real output of
# `kvlab run --csv` must have exactly the declared columns.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.bash" "$@"

diff <("$KVLAB" schema) "$SRC/analysis/kvlab_analysis/results_schema.json" \
  || fail "analysis/kvlab_analysis/results_schema.json is out of date: run kvlab schema > it"
sed -n '/<!-- kvlab schema: begin -->/,/<!-- kvlab schema: end -->/p' "$SRC/docs/outputs.md" | sed '1d;$d' \
  | diff - <("$KVLAB" schema --markdown) || fail "docs/outputs.md is out of date: regenerate with kvlab schema --markdown"

"$KVLAB" --quiet run -d "$SRC/data/shakespeare-a.kvdump.h5" -c kivi-2bit -c h2o-20pct --layers 0 --eval-every 64 \
  --csv "$TMP/out" >/dev/null || fail "kvlab run --csv"
/usr/bin/python3 - "$TMP/out" "$SRC/analysis/kvlab_analysis/results_schema.json" <<'PY' || fail "columns differ from the schema"
import csv, json, sys, os
out, schema = sys.argv[1], json.load(open(sys.argv[2]))
for name, table in schema["tables"].items():
    path = os.path.join(out, name)
    if table["model_only"]:
        assert not os.path.exists(path), f"{name} written without a model"
        continue
    header = next(csv.reader(open(path)))
    declared = [c["name"] for c in table["columns"] if not c["model_only"]]
    fixed = [h for h in header if not any(h.startswith(p) for p in table["dynamic_prefixes"])]
    assert fixed == declared, (name, fixed, declared)
    assert len(set(header)) == len(header), f"{name}: duplicate columns"
print("ok")
PY
# --csv never replaces results without --overwrite.
"$KVLAB" --quiet run -d "$SRC/data/shakespeare-a.kvdump.h5" -c kivi-2bit --layers 0 --eval-every 64 --csv "$TMP/out" \
  >/dev/null 2>"$TMP/err" && fail "run --csv replaced existing results"
grep -q "results already exist" "$TMP/err" || fail "no clear message: $(cat "$TMP/err")"
"$KVLAB" --quiet run -d "$SRC/data/shakespeare-a.kvdump.h5" -c kivi-2bit --layers 0 --eval-every 64 --csv "$TMP/out" \
  --overwrite >/dev/null || fail "run --csv --overwrite"
echo "schema: ok"
