#!/usr/bin/env bash
# Strong scaling of an MPI sweep: wall time of `mpirun -n N kvlab sweep FILE
# -j 1` for each N, and of the plain single-process sweep (the baseline, no
# mpirun) in the same run; median, min and max over RUNS runs, interleaved so
# that a noisy neighbour hits every N alike. Also the sweep's own seconds
# (without mpirun's start-up), the CPU seconds of all processes, and the
# cores they used on average (CPU seconds / wall seconds): on a machine
# shared with other busy programs, speed-up / (cores used relative to the
# baseline) is the parallel efficiency, whatever share the neighbours left.
#   bash experiments/bench/mpi_scaling.sh [-n "1 2"] [-r RUNS] [-b BUILD] [-s] [FILE.yaml]
# Default FILE: experiments/gear-ablation.yaml (102 jobs on the bundled dumps).
# -s: every process (each rank, and the baseline) in its own session. On a
# machine shared with other busy sessions, Linux's autogroup scheduling
# (/proc/sys/kernel/sched_autogroup_enabled) gives each session one equal
# share of the CPUs however many processes it runs, so N ranks of one session
# cannot be faster than one process; in their own sessions each rank gets a
# share, as each gets a core on a cluster.
set -euo pipefail
cd "$(dirname "$0")/../.."
ranks="1 2"; runs=5; build=build; session=()
while getopts "n:r:b:s" opt; do
  case $opt in n) ranks=$OPTARG ;; r) runs=$OPTARG ;; b) build=$OPTARG ;; s) session=(setsid -w) ;; *) exit 2 ;; esac
done
shift $((OPTIND - 1))
sweep=${1:-experiments/gear-ablation.yaml}
kvlab=$build/kvlab
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
mpirun_=(mpirun --oversubscribe --bind-to none)
[ "$(id -u)" -ne 0 ] || mpirun_+=(--allow-run-as-root)

one() {  # one LABEL CMD...: appends "wall sweep_s cpu_s" to $out/LABEL
  local label=$1; shift
  local TIMEFORMAT="%R %U %S" times line
  # bash's time: wall, and user + system time of all descendants (the ranks too)
  times=$( { time "$@" sweep "$sweep" -o "$out/r" -j 1 -q --overwrite > "$out/line"; } 2>&1 | tail -1)
  line=$(cat "$out/line")
  local s
  s=$(grep -o 'in [0-9.]* s;' <<<"$line" | tr -dc '0-9.')
  awk -v s="$s" '{printf "%s %s %.2f\n", $1, s, $2 + $3}' <<<"$times" >> "$out/$label"
}
load=$(cut -d' ' -f1-3 /proc/loadavg)
for ((i = 0; i < runs; i++)); do
  one serial "${session[@]}" "$kvlab"
  for n in $ranks; do one "n$n" "${mpirun_[@]}" -n "$n" "${session[@]}" "$kvlab"; done
done

stats() {  # column of a result file → "median min max"
  cut -d' ' -f"$2" "$1" | sort -g | awk '{v[NR]=$1} END {m = NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2; printf "%.2f %.2f %.2f", m, v[1], v[NR]}'
}
read -r base _ <<<"$(stats "$out/serial" 1)"
printf "%s: %d runs each%s; load average before: %s\n" "$sweep" "$runs" \
  "$([ ${#session[@]} -gt 0 ] && echo ", each process in its own session")" "$load"
printf "%-22s %-22s %-22s %-7s %-11s %s\n" "" "wall s (med min max)" "sweep s (med min max)" "cpu s" "cores used" \
  "speed-up (median wall)"
for label in serial $(for n in $ranks; do echo "n$n"; done); do
  read -r med mn mx <<<"$(stats "$out/$label" 1)"
  read -r smed smn smx <<<"$(stats "$out/$label" 2)"
  read -r cmed _ <<<"$(stats "$out/$label" 3)"
  name=$([ "$label" = serial ] && echo "1 process (no mpirun)" || echo "mpirun -n ${label#n}")
  printf "%-22s %-22s %-22s %-7s %-11s %.2fx\n" "$name" "$med $mn $mx" "$smed $smn $smx" "$cmed" \
    "$(awk -v c="$cmed" -v w="$med" 'BEGIN {printf "%.2f", c / w}')" "$(awk -v a="$base" -v b="$med" 'BEGIN {print a / b}')"
done
