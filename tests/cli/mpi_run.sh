#!/usr/bin/env bash
# `kvlab run` with the dump's layers split across MPI ranks prints the same
# table and writes the same CSV files as one process (only the "replayed in"
# line differs), also with more ranks than layers. Skips (77) without MPI.
set -u
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.bash" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/lib/mpi.bash"
DUMP=$SRC/data/shakespeare-a.kvdump.h5

check() {  # check NAME RANKS ARGS...: one process vs RANKS ranks
  local name=$1 n=$2; shift 2
  "$KVLAB" run -q -d "$DUMP" "$@" -j 1 --per-layer --csv "$TMP/$name.1" >"$TMP/$name.1.txt" || fail "$name: one process"
  mpi "$n" "$KVLAB" run -q -d "$DUMP" "$@" -j 1 --per-layer --csv "$TMP/$name.n" >"$TMP/$name.n.txt" ||
    fail "$name: $n ranks"
  grep -q "on $n ranks × 1 threads (layers split across ranks)" "$TMP/$name.n.txt" || fail "$name: not split"
  diff <(grep -v -e "^replayed in" -e "^wrote " "$TMP/$name.1.txt") \
       <(grep -v -e "^replayed in" -e "^wrote " "$TMP/$name.n.txt") >&2 || fail "$name: printed tables differ"
  for f in summary layers steps; do
    cmp -s "$TMP/$name.1/$f.csv" "$TMP/$name.n/$f.csv" || fail "$name: $f.csv differs between 1 process and $n ranks"
  done
}
# Quantizers, GEAR, a dropper scoring every step, a
# per-layer calibration (kvquant), uneven layer ranges (4 layers on 3 ranks).
check mixed 3 -c kivi-2bit -c gear-2bit -c h2o-20pct -c kvquant-nuq3-1pct -c pyramidkv-1024 --eval-every 32
check idle 3 -c kivi-2bit --layers 1,3 --eval-every 64   # rank 2 has no layer

# A bad command line is reported once (rank 0), not once per rank, and every
# rank exits non-zero; so is an error all ranks agree on (unknown compressor).
mpi 3 "$KVLAB" run -d "$DUMP" -c kivi-2bit --no-such-option >"$TMP/bad.out" 2>"$TMP/bad.err" && fail "bad option accepted"
[ "$(grep -c "kvlab: error" "$TMP/bad.err")" -eq 1 ] || fail "parse error not printed exactly once: $(cat "$TMP/bad.err")"
mpi 3 "$KVLAB" run -d "$DUMP" -c no-such-method >"$TMP/bad.out" 2>"$TMP/bad.err" && fail "bad compressor accepted"
[ "$(grep -c "kvlab: error" "$TMP/bad.err")" -eq 1 ] || fail "spec error not printed exactly once: $(cat "$TMP/bad.err")"
mpi 3 "$KVLAB" run --help >"$TMP/help.out" 2>&1 || fail "--help under MPI"
[ "$(grep -c "^Usage:" "$TMP/help.out")" -eq 1 ] || fail "help not printed exactly once"
echo "mpi run: ok"
