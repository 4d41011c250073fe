#!/usr/bin/env bash
# Hardening checks (docs/reliability.md), run by .ci/run after tools/run_tests.sh.
# One clang build in build-hardening/ (-DKVLAB_FUZZ=ON: ASan + UBSan at -O1 and
# libFuzzer coverage in every target) serves both parts:
#  1. the whole test suite (ctest) and `kvlab regress`, sanitized, halt_on_error;
#  2. the libFuzzer targets (spec strings, sweep files, dumps), each run for a
#     bounded time from the committed corpus (tests/fuzz/corpus/<target>) and
#     the past findings (tests/fuzz/regressions/<target>).
# A finding is saved under build-hardening/findings/; once fixed, keep it as a
# regression file under tests/fuzz/regressions/<target>/.
#
# Usage: tools/run_hardening.sh [--fuzz-seconds N] [--no-suite] [--no-fuzz]
#   --fuzz-seconds N   per target (default 60; KVLAB_FUZZ_SECONDS also sets it)
set -euo pipefail
cd "$(dirname "$0")/.."

fuzz_seconds=${KVLAB_FUZZ_SECONDS:-60}
run_suite=1
run_fuzz=1
while [[ $# -gt 0 ]]; do
  case $1 in
    --fuzz-seconds) fuzz_seconds=$2; shift 2 ;;
    --no-suite) run_suite=0; shift ;;
    --no-fuzz) run_fuzz=0; shift ;;
    *) echo "usage: $0 [--fuzz-seconds N] [--no-suite] [--no-fuzz]" >&2; exit 2 ;;
  esac
done

bash tools/setup.sh  # packages (clang, libFuzzer, ...) and the Release build
jobs=$(nproc)
launcher=()
if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache); fi
build=build-hardening
start=$SECONDS
step() { echo "hardening: $1 ($((SECONDS - start)) s so far)"; }

# Sanitizer settings for both parts:
# - halt_on_error: the first report fails the run;
# - allocator_may_return_null + max_allocation_size_mb: HDF5 allocates sizes
#   read from corrupt headers (then fails reading past the end of the file,
#   never touching the memory) and copes with NULL; without these ASan aborts
#   ("allocation-size-too-big") or poisons shadow memory for the whole block
#   (1/8 of its size, resident), where a release build reports a clean error;
# - LeakSanitizer on, with HDF5's own small leaks on corrupt-file error paths
#   suppressed (tests/fuzz/lsan.supp).
export ASAN_OPTIONS=halt_on_error=1:detect_leaks=1:allocator_may_return_null=1:max_allocation_size_mb=2048:quarantine_size_mb=64
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export LSAN_OPTIONS=suppressions=$PWD/tests/fuzz/lsan.supp

# (CMakeLists.txt leaves the Python module out of sanitizer builds; the
# Python tests of the analysis still run the sanitized kvlab executable.)
echo "== hardening: clang build with ASan + UBSan + fuzzer coverage ($build/)"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DKVLAB_FUZZ=ON "${launcher[@]}" >/dev/null
targets=()
[[ $run_fuzz -eq 1 && $run_suite -eq 0 ]] && targets=(--target fuzz_spec fuzz_sweep_yaml fuzz_dump)
cmake --build "$build" -j "$jobs" "${targets[@]}"
step "built"

if [[ $run_suite -eq 1 ]]; then
  echo "== hardening 1/2: sanitized test suite and kvlab regress"
  # LeakSanitizer needs ptrace; where the machine forbids it, say so and go on without.
  if ! "./$build/kvlab" --version >/dev/null 2>"$build/lsan-probe.txt"; then
    if grep -q "LeakSanitizer has encountered a fatal error" "$build/lsan-probe.txt"; then
      echo "hardening: LeakSanitizer cannot run here (no ptrace); leak checks off" >&2
      export ASAN_OPTIONS=${ASAN_OPTIONS/detect_leaks=1/detect_leaks=0}
    else
      cat "$build/lsan-probe.txt" >&2
      exit 1
    fi
  fi
  # The analysis' end-to-end and report tests are left to the release run: they
  # spend minutes in matplotlib and Chromium, and their kvlab calls are sweeps
  # the sanitized CLI and sweep tests already cover.
  # The MPI tests run without leak checks: OpenMPI's plugins leave their own
  # allocations behind at exit (in dlclosed modules, so no suppression can name them).
  (cd "$build" && ctest -j "$jobs" --output-on-failure -E '^(py\.test_analysis_(e2e|html)|cli\.mpi_.*)$')
  (cd "$build" && ASAN_OPTIONS=${ASAN_OPTIONS/detect_leaks=1/detect_leaks=0} ctest -j "$jobs" --output-on-failure -R '^cli\.mpi_')
  "./$build/kvlab" regress --quiet
  step "sanitized suite passed"
fi

if [[ $run_fuzz -eq 1 ]]; then
  echo "== hardening 2/2: libFuzzer targets, ${fuzz_seconds} s each"
  mkdir -p "$build/findings"
  failed=()
  for target in spec sweep_yaml dump; do
    work=$(mktemp -d)  # new inputs go here, never into the committed corpus
    corpora=("$work" "tests/fuzz/corpus/$target")
    [[ -n "$(ls -A "tests/fuzz/regressions/$target" 2>/dev/null)" ]] && corpora+=("tests/fuzz/regressions/$target")
    dict=()
    [[ -f "tests/fuzz/$target.dict" ]] && dict=(-dict="tests/fuzz/$target.dict")
    # -timeout: a hang is a finding; -rss_limit_mb: a memory blow-up is one
    # (the sanitizers take ~150 MB themselves); -malloc_limit_mb: so is a
    # single allocation kvlab would touch beyond what a test file justifies.
    log="$build/findings/$target.log"
    if "$build/tests/fuzz/fuzz_$target" "${dict[@]}" -max_total_time="$fuzz_seconds" -timeout=10 \
        -rss_limit_mb=1024 -malloc_limit_mb=4096 -max_len=24000 -print_final_stats=1 \
        -artifact_prefix="$build/findings/$target-" "${corpora[@]}" >"$log" 2>&1; then
      runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
      echo "hardening: fuzz_$target: ${runs:-?} runs, no finding"
    else
      tail -n 40 "$log" >&2
      echo "hardening: fuzz_$target FOUND A PROBLEM (input saved as $build/findings/$target-*, log $log)" >&2
      failed+=("$target")
    fi
    rm -rf "$work"
  done
  [[ ${#failed[@]} -eq 0 ]] || exit 1
fi
step "all checks passed"
