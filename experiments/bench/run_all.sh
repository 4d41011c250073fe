#!/usr/bin/env bash
# Every performance figure the README quotes, in one command:
#
#   bash experiments/bench/run_all.sh [--full] [--runs N]
#
# Configures and builds its own folder (build-bench/, Release, benchmarks on),
# then measures each figure N times (default 5; the layer benchmarks 11) and
# prints median, min and max, the baseline measured in the same run (memory
# floor, fp16 replay, 1 thread) and the exact command. Everything printed also
# goes to results/bench/summary.txt, the raw timings of the `kvlab run`
# figures to results/bench/kvlab_run.csv.
#
# Default: under 10 minutes on an idle 2-core machine. --full (or
# KVLAB_BENCH_FULL=1) adds `kvlab run` with 1 thread (the 2-thread speedup) and
# with every decode step evaluated, on a 4-layer slice and on the whole dump,
# which takes far longer.
# Environment: KVLAB_BENCH_RUNS (N), KVLAB_BENCH_BUILD (build folder),
# KVLAB_BENCH_DUMP (where the 3.2 GB synthetic dump goes; default in $TMPDIR or
# /tmp, removed at the end unless KVLAB_BENCH_KEEP_DUMP=1).
# Needs no GPU and no network. The machine may be shared: the load average is
# printed with each benchmark, and ranges matter more than single numbers.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

RUNS=${KVLAB_BENCH_RUNS:-5}
FULL=${KVLAB_BENCH_FULL:-0}
while [ $# -gt 0 ]; do
  case "$1" in
    --full) FULL=1 ;;
    --runs) RUNS=$2; shift ;;
    *) echo "usage: bash experiments/bench/run_all.sh [--full] [--runs N]" >&2; exit 2 ;;
  esac
  shift
done
if ! [[ "$RUNS" =~ ^[0-9]+$ ]] || [ "$RUNS" -lt 1 ]; then
  echo "run_all: --runs must be a positive integer (got '$RUNS')" >&2
  exit 2
fi
BUILD=${KVLAB_BENCH_BUILD:-build-bench}
DUMP=${KVLAB_BENCH_DUMP:-${TMPDIR:-/tmp}/kvlab-bench-7b.h5}
OUT=results/bench
LAYER_RUNS=$(( RUNS > 11 ? RUNS : 11 ))
mkdir -p "$OUT"
SUMMARY=$OUT/summary.txt
RAW=$OUT/kvlab_run.csv
: >"$SUMMARY"
echo "figure,run,threads,seconds,max_rss_kb" >"$RAW"
SCRATCH=$(mktemp -d)
cleanup() {
  rm -rf "$SCRATCH"
  if [ "${KVLAB_BENCH_KEEP_DUMP:-0}" != 1 ]; then rm -f "$DUMP"; fi
}
trap cleanup EXIT

say() { printf '%s\n' "$*" | tee -a "$SUMMARY"; }
load() { cut -d' ' -f1-3 /proc/loadavg; }

# stats DIGITS UNIT: "median M UNIT (min A, max B; N runs)" of the numbers on stdin.
stats() {
  sort -g | awk -v d="${1:-2}" -v u="${2:-}" '{ v[NR] = $1 }
    END { n = NR; m = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2;
          printf "median %.*f%s (min %.*f, max %.*f; %d runs)", d, m, u, d, v[1], d, v[n], n }'
}
median() { sort -g | awk '{ v[NR] = $1 } END { n = NR; print (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2 }'; }

# timed FIGURE RUN THREADS CMD...: runs CMD under /usr/bin/time -v, appends
# wall seconds and peak RSS to the raw CSV.
timed() {
  local figure=$1 run=$2 threads=$3
  shift 3
  local t0 t1
  t0=$(date +%s.%N)
  /usr/bin/time -v -o "$SCRATCH/time.txt" "$@" >"$SCRATCH/out.txt" 2>&1 || {
    echo "run_all: command failed: $*" >&2
    cat "$SCRATCH/out.txt" >&2
    exit 1
  }
  t1=$(date +%s.%N)
  local rss
  rss=$(awk -F': *' '/Maximum resident set size/ { print $2 }' "$SCRATCH/time.txt")
  echo "$figure,$run,$threads,$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'),$rss" >>"$RAW"
}
column_of() {  # column_of FIGURE FIELD(4 = seconds, 5 = rss kB)
  awk -F, -v f="$1" -v c="$2" '$1 == f { print $c }' "$RAW"
}
report_run() {  # report_run FIGURE LABEL: wall time and peak RSS lines
  say "  $2: $(column_of "$1" 4 | stats 2 ' s')"
  say "    peak RSS: $(column_of "$1" 5 | awk '{ print $1 / 1024 }' | stats 0 ' MB')"
}

say "kvlab benchmarks: $(date -u '+%Y-%m-%d %H:%M UTC'), revision $(git describe --always --dirty 2>/dev/null || echo unknown)"
say "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) cores, $(awk '/MemTotal/ { printf "%.1f GB", $2 / 1048576 }' /proc/meminfo); load average $(load)"
say "runs per figure: $RUNS (layer benchmarks $LAYER_RUNS); full mode (every decode step): $([ "$FULL" = 1 ] && echo on || echo off)"
say ""

# ---- Build ----------------------------------------------------------------
launcher=()
if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
generator=()
if command -v ninja >/dev/null; then generator=(-G Ninja); fi
say "== build: $BUILD (Release, -DKVLAB_BUILD_BENCH=ON)"
t0=$(date +%s)
cmake -S . -B "$BUILD" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DKVLAB_BUILD_BENCH=ON -DKVLAB_BUILD_TESTS=OFF \
  "${launcher[@]}" >"$SCRATCH/configure.txt" 2>&1 || { cat "$SCRATCH/configure.txt" >&2; exit 1; }
cmake --build "$BUILD" -j "$(nproc)" --target kvlab bench_kivi bench_gear bench_sweep bench_decode \
  >"$SCRATCH/build.txt" 2>&1 || { cat "$SCRATCH/build.txt" >&2; exit 1; }
say "  built in $(( $(date +%s) - t0 )) s"
say ""
KVLAB=$BUILD/kvlab

# ---- One 7B-shaped layer: KIVI and GEAR -------------------------------------
# bench COPY CMD...: runs a benchmark binary (it prints its own command line);
# output to stdout, the summary and the file COPY.
bench() {
  local copy=$1
  shift
  "$@" 2>&1 | tee -a "$SUMMARY" | tee "$copy"
}
hash_of() { awk '/reconstruction hash/ { print $3 }' "$1"; }
say "== KIVI-2bit, one 7B-shaped layer (32 kv heads, K and V [4096 x 128]), prefill"
bench "$SCRATCH/kivi2.txt" "$BUILD/bench_kivi" --threads 2 --runs "$LAYER_RUNS"
bench "$SCRATCH/kivi1.txt" "$BUILD/bench_kivi" --threads 1 --runs "$RUNS"
say "  same reconstruction with 1 and 2 threads: $([ "$(hash_of "$SCRATCH/kivi1.txt")" = "$(hash_of "$SCRATCH/kivi2.txt")" ] && echo yes || echo NO)"
say ""
say "== GEAR-2bit (G=64, s=0.02, r=4, loop=3), same layer, prefill, with a breakdown"
bench "$SCRATCH/gear2.txt" "$BUILD/bench_gear" --threads 2 --runs "$LAYER_RUNS"
bench "$SCRATCH/gear1.txt" "$BUILD/bench_gear" --threads 1 --runs "$RUNS" --no-breakdown
say "  same reconstruction with 1 and 2 threads: $([ "$(hash_of "$SCRATCH/gear1.txt")" = "$(hash_of "$SCRATCH/gear2.txt")" ] && echo yes || echo NO)"
say ""

# ---- kvlab run on the whole llama2-7b synthetic dump ------------------------
say "== kvlab run on the whole llama2-7b synthetic dump (32 layers x 32 kv heads x 4096 tokens x 128, prompt 2048 + 2048 decode steps, 3.2 GB)"
say "  command: $KVLAB synth $DUMP --preset llama2-7b"
for i in $(seq "$RUNS"); do timed synth "$i" 2 "$KVLAB" -q synth "$DUMP" --preset llama2-7b; done
report_run synth "synth (writes the dump)"
say "  load average: $(load)"
run_figure() {  # run_figure FIGURE THREADS EXTRA-ARGS...
  local figure=$1 threads=$2 i=$3
  shift 3
  timed "$figure" "$i" "$threads" "$KVLAB" -q run -d "$DUMP" -j "$threads" "$@"
}
for i in $(seq "$RUNS"); do  # interleaved, so background load hits every figure alike
  run_figure fp16-e512-j2 2 "$i" -c fp16 --eval-every 512
  run_figure kivi-e512-j2 2 "$i" -c kivi-2bit --eval-every 512
  if [ "$FULL" = 1 ]; then run_figure kivi-e512-j1 1 "$i" -c kivi-2bit --eval-every 512; fi
  run_figure gear-e512-j2 2 "$i" -c gear-2bit --eval-every 512
done
say "  command: /usr/bin/time -v $KVLAB run -d $DUMP -j 2 -c kivi-2bit --eval-every 512"
report_run kivi-e512-j2 "KIVI-2bit, --eval-every 512, 2 threads"
say "  command: /usr/bin/time -v $KVLAB run -d $DUMP -j 2 -c gear-2bit --eval-every 512"
report_run gear-e512-j2 "GEAR-2bit, --eval-every 512, 2 threads"
say "  baseline in the same run: $KVLAB run -d $DUMP -j 2 -c fp16 --eval-every 512 (read, replay, metrics; no compression)"
report_run fp16-e512-j2 "fp16, --eval-every 512, 2 threads"
if [ "$FULL" = 1 ]; then
  say "  command: /usr/bin/time -v $KVLAB run -d $DUMP -j 1 -c kivi-2bit --eval-every 512"
  report_run kivi-e512-j1 "KIVI-2bit, --eval-every 512, 1 thread"
  paste -d' ' <(column_of kivi-e512-j1 4) <(column_of kivi-e512-j2 4) | awk '{ print $1 / $2 }' >"$SCRATCH/speedup.txt"
  j1=$(column_of kivi-e512-j1 4 | median)
  j2=$(column_of kivi-e512-j2 4 | median)
  say "  kvlab run -j 2 vs -j 1 (KIVI-2bit, --eval-every 512): $(awk -v a="$j1" -v b="$j2" 'BEGIN { printf "%.2f", a / b }')x from the medians; run by run $(stats 2 x <"$SCRATCH/speedup.txt")"
else
  say "  kvlab run -j 1 (for the 2-thread speedup): skipped (run with --full)"
fi
say "  load average: $(load)"
say ""

if [ "$FULL" = 1 ]; then
  say "== kvlab run with every decode step evaluated (all metrics)"
  for i in $(seq "$RUNS"); do
    run_figure kivi-slice-every 2 "$i" -c kivi-2bit --layers 0-3
    run_figure gear-slice-every 2 "$i" -c gear-2bit --layers 0-3
  done
  say "  command: /usr/bin/time -v $KVLAB run -d $DUMP -j 2 -c kivi-2bit --layers 0-3"
  report_run kivi-slice-every "KIVI-2bit, 4-layer slice, every step"
  say "  command: /usr/bin/time -v $KVLAB run -d $DUMP -j 2 -c gear-2bit --layers 0-3"
  report_run gear-slice-every "GEAR-2bit, 4-layer slice, every step"
  for i in $(seq "$RUNS"); do
    run_figure kivi-every 2 "$i" -c kivi-2bit
    run_figure gear-every 2 "$i" -c gear-2bit
  done
  say "  command: /usr/bin/time -v $KVLAB run -d $DUMP -j 2 -c kivi-2bit"
  report_run kivi-every "KIVI-2bit, whole dump, every step"
  say "  command: /usr/bin/time -v $KVLAB run -d $DUMP -j 2 -c gear-2bit"
  report_run gear-every "GEAR-2bit, whole dump, every step"
  say "  load average: $(load)"
else
  say "== kvlab run with every decode step evaluated: skipped (slow; run with --full)"
fi
say ""

# ---- Sweep and model in the loop ---------------------------------------------
say "== sweep: 2 threads vs 1 and the fixed cost per job"
bench /dev/null "$BUILD/bench_sweep" --threads 2 --runs "$RUNS"
say ""
say "== model in the loop: decode tokens/s of the reference forward (fp16 vs compressed cache states)"
bench /dev/null "$BUILD/bench_decode" --threads 2 --rounds "$RUNS" --no-large
bench /dev/null "$BUILD/bench_decode" --threads 2 --rounds "$RUNS" --no-tiny --context 128 --steps 8
say ""
say "summary written to $SUMMARY; raw kvlab run timings in $RAW"
