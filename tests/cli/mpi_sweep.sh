#!/usr/bin/env bash
# A sweep spread over MPI ranks, or split into static shards and merged,
# gives the single-process files byte for byte (timing.csv differs by
# nature); merge refuses a shard of another plan; a rank killed mid-sweep,
# then --resume, gives the same files again. Skips (77) without MPI.
set -u
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.bash" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/lib/mpi.bash"

"$KVLAB" synth "$TMP/a.h5" --preset tiny --seed 1 --layers 6 --tokens 320 >/dev/null || fail synth
"$KVLAB" synth "$TMP/b.h5" --preset tiny --seed 2 --tokens 96 >/dev/null || fail synth
cat > "$TMP/s.yaml" <<YAML
name: mpi
dumps: [a.h5, b.h5, $SRC/data/synth-tiny.kvdump.h5]
compressors:
  - fp16
  - {method: kivi, bits: [2, 4], group: [16, 32], residual: [32, 64]}
  - {method: uniform, bits: [2, 4], axis: [token, channel]}
  - {method: gear, bits: 2, rank: [0, 2]}
replay: {eval_every: 8}
YAML
same_files() {  # same_files DIR_A DIR_B WHAT
  for f in summary layers steps; do
    cmp -s "$1/$f.csv" "$2/$f.csv" || fail "$3: $f.csv differs from the single-process sweep"
  done
}

"$KVLAB" sweep "$TMP/s.yaml" -o "$TMP/single" -j 1 -q >/dev/null || fail "single-process sweep"
jobs=$(($(wc -l < "$TMP/single/summary.csv") - 1))
[ "$jobs" -eq 45 ] || fail "expected 45 jobs, got $jobs"

# Dynamic distribution over 3 ranks, single jobs per hand-out and batches;
# a.h5's jobs are large enough to be cut into layer ranges.
mpi 3 "$KVLAB" sweep "$TMP/s.yaml" --dry-run >"$TMP/plan" || fail "dry run on 3 ranks"
grep -q "on 3 ranks, the jobs on a.h5 run in [2-6] layer ranges" "$TMP/plan" || fail "no job cut: $(tail -3 "$TMP/plan")"
mpi 3 "$KVLAB" sweep "$TMP/s.yaml" -o "$TMP/mpi" -j 1 -q --chunk 1 >"$TMP/out" || fail "mpirun -n 3 sweep"
grep -q "45 jobs (0 already done, 45 ran, 0 failed, 3 ranks)" "$TMP/out" || fail "summary line: $(cat "$TMP/out")"
same_files "$TMP/single" "$TMP/mpi" "mpirun -n 3 --chunk 1"
cmp -s "$TMP/single/config.resolved.yaml" "$TMP/mpi/config.resolved.yaml" || fail "config.resolved.yaml differs"
mpi 3 "$KVLAB" sweep "$TMP/s.yaml" -o "$TMP/mpi4" -j 1 -q --chunk 4 >/dev/null || fail "mpirun -n 3 --chunk 4"
same_files "$TMP/single" "$TMP/mpi4" "mpirun -n 3 --chunk 4"
/usr/bin/python3 - "$TMP/mpi4/timing.csv" <<'PY' || fail "no batch of 4 jobs shared its layer reads"
import csv, sys
assert max(int(r["batch_jobs"]) for r in csv.DictReader(open(sys.argv[1]))) == 4
PY

# Three static shards, merged.
for i in 1 2 3; do
  "$KVLAB" sweep "$TMP/s.yaml" --shard "$i/3" -o "$TMP/shard$i" -j 1 -q >/dev/null || fail "shard $i/3"
  grep -q "^shard: $i" "$TMP/shard$i/shard.yaml" || fail "shard $i: shard.yaml lacks its id"
  grep -q "^plan_hash: " "$TMP/shard$i/shard.yaml" || fail "shard $i: shard.yaml lacks the plan hash"
done
n=0
for i in 1 2 3; do n=$((n + $(wc -l < "$TMP/shard$i/summary.csv") - 1)); done
[ "$n" -eq 45 ] || fail "the shards hold $n jobs, not 45"
"$KVLAB" merge "$TMP/merged" "$TMP/shard3" "$TMP/shard1" "$TMP/shard2" >"$TMP/out" || fail "merge: $(cat "$TMP/out")"
same_files "$TMP/single" "$TMP/merged" "three shards merged"
cmp -s "$TMP/single/config.resolved.yaml" "$TMP/merged/config.resolved.yaml" || fail "merged config differs"
# Slurm array tasks find their shard themselves (an array 0-2).
SLURM_ARRAY_TASK_ID=1 SLURM_ARRAY_TASK_MIN=0 SLURM_ARRAY_TASK_COUNT=3 \
  "$KVLAB" sweep "$TMP/s.yaml" --shard auto -o "$TMP/auto" -j 1 -q >/dev/null || fail "--shard auto"
cmp -s "$TMP/auto/summary.csv" "$TMP/shard2/summary.csv" || fail "--shard auto (task 1 of 0-2) is not shard 2/3"

# Merge refuses: an existing output, a shard of another plan, a shard twice;
# it lists what is missing.
"$KVLAB" merge "$TMP/merged" "$TMP/shard1" "$TMP/shard2" "$TMP/shard3" >/dev/null 2>"$TMP/err" && fail "merge overwrote"
grep -q "already exist" "$TMP/err" || fail "message: $(cat "$TMP/err")"
sed 's/eval_every: 8/eval_every: 4/' "$TMP/s.yaml" > "$TMP/other.yaml"
"$KVLAB" sweep "$TMP/other.yaml" --shard 2/3 -o "$TMP/other2" -j 1 -q >/dev/null || fail "other plan's shard"
"$KVLAB" merge "$TMP/bad" "$TMP/shard1" "$TMP/other2" "$TMP/shard3" >/dev/null 2>"$TMP/err" && fail "merged another plan"
grep -q "results of another plan" "$TMP/err" || fail "message: $(cat "$TMP/err")"
[ ! -e "$TMP/bad" ] || fail "a refused merge wrote its output folder"
"$KVLAB" merge "$TMP/bad" "$TMP/shard1" "$TMP/shard1" >/dev/null 2>"$TMP/err" && fail "merged a shard twice"
grep -q "both hold shard 1/3" "$TMP/err" || fail "message: $(cat "$TMP/err")"
"$KVLAB" merge "$TMP/part" "$TMP/shard1" "$TMP/shard3" >"$TMP/out" 2>"$TMP/err" && fail "merge with a shard missing exited 0"
grep -q "shard 2/3 not given" "$TMP/out" || fail "missing shard not listed: $(cat "$TMP/out")"
[ "$(grep -c "^  missing " "$TMP/out")" -eq "$(($(wc -l < "$TMP/shard2/summary.csv") - 1))" ] || fail "missing jobs not listed"
# ... and the partial merge is finished by resuming the sweep into it.
"$KVLAB" sweep "$TMP/s.yaml" -o "$TMP/part" --resume -j 1 -q >/dev/null || fail "resume a partial merge"
same_files "$TMP/single" "$TMP/part" "partial merge + resume"
"$KVLAB" sweep "$TMP/s.yaml" --shard 2/3 -o "$TMP/shard1" --resume -q 2>"$TMP/err" && fail "ran shard 2 into shard 1's folder"
grep -q "holds shard 1/3, not 2/3" "$TMP/err" || fail "message: $(cat "$TMP/err")"

# A rank killed mid-sweep (SIGKILL: mpirun ends the others), then the whole
# MPI job killed (SIGTERM to every process, as Slurm does at a time limit),
# then --resume: the same files, no row lost or doubled.
sed 's/eval_every: 8/eval_every: 2/' "$TMP/s.yaml" > "$TMP/slow.yaml"
"$KVLAB" sweep "$TMP/slow.yaml" -o "$TMP/slow_single" -j 1 -q >/dev/null || fail "single-process slow sweep"
rows() { [ -f "$1/summary.csv" ] && echo $(($(wc -l < "$1/summary.csv") - 1)) || echo 0; }
kill_when_rows() {  # kill_when_rows N SIGNAL RANK|all ARGS...: start the MPI sweep, kill once it wrote N more jobs
  local want=$(($(rows "$TMP/killed") + $1)) sig=$2 who=$3; shift 3
  "${MPIRUN[@]}" -n 3 "$KVLAB" sweep "$TMP/slow.yaml" -o "$TMP/killed" -j 1 -q --chunk 1 "$@" >/dev/null 2>&1 &
  local launcher=$! waited=0
  while [ "$(rows "$TMP/killed")" -lt "$want" ]; do
    kill -0 $launcher 2>/dev/null || fail "the sweep ended before $want jobs were written"
    sleep 0.05; waited=$((waited + 1))
    [ $waited -lt 1200 ] || fail "no progress"
  done
  local targets
  if [ "$who" = all ]; then  # as a batch system ends a job step: every rank and the launcher
    targets="$(pgrep -P $launcher | tr '\n' ' ') $launcher"
  else
    targets=$(rank_pid $launcher "$who") || exit 1
  fi
  kill -s "$sig" $targets
  wait $launcher 2>/dev/null
  local n; n=$(rows "$TMP/killed")
  [ "$n" -lt 45 ] || fail "the kill came too late (all jobs written): nothing was tested"
  [ -z "${VERBOSE:-}" ] || echo "killed ($sig $who) with $n of 45 jobs written" >&2
}
kill_when_rows 3 KILL 2
kill_when_rows 3 TERM all --resume
[ -z "${VERBOSE:-}" ] || { cut -d, -f1 "$TMP/killed/summary.csv" | head -8; cut -d, -f1 "$TMP/slow_single/summary.csv" | head -8; } >&2
mpi 3 "$KVLAB" sweep "$TMP/slow.yaml" -o "$TMP/killed" -j 1 -q --resume >/dev/null || fail "final resume"
same_files "$TMP/slow_single" "$TMP/killed" "killed ranks + --resume"
echo "mpi sweep: ok"
