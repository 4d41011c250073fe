// A 100-job sweep on a small synthetic dump: speed-up of N threads over 1 and
// the fixed overhead per job (plan, scheduling, CSV) measured with jobs that
// do almost no replay work. Runs alternate (1 thread, N threads, overhead) so
// background load hits all alike; median, min and max over the runs.
//   usage: bench_sweep [--threads N] [--runs R]
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "bench_common.hpp"
#include "kvlab/core/allocator.hpp"
#include "kvlab/io/synth.hpp"
#include "kvlab/sweep/sweep_runner.hpp"

using namespace kvlab;
namespace fs = std::filesystem;

namespace {

double run(const std::string& yaml, const fs::path& out, int threads) {
  fs::remove_all(out);
  SweepRunOptions o;
  o.quiet = true;
  o.threads = threads;
  const auto t0 = std::chrono::steady_clock::now();
  const SweepPlan plan = make_sweep_plan(load_sweep_config(yaml), out.string());
  run_sweep(plan, o);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string seconds(const bench::Stats& s) {
  return fmt::format("median {:.3f} s (min {:.3f}, max {:.3f}; {} runs)", s.median, s.min, s.max, s.runs);
}

}  // namespace

int main(int argc, char** argv) {
  kvlab::tune_allocator();
  const bench::Args args(argc, argv, {"--threads", "--runs"}, {}, "bench_sweep [--threads N] [--runs R]");
  const int threads = args.get_int("--threads", 2), runs = std::max(1, args.get_int("--runs", 5));
  const fs::path dir = fs::temp_directory_path() / fmt::format("kvlab_bench_sweep_{}", ::getpid());
  fs::create_directories(dir);
  SynthOptions s;
  s.preset = "small";  // 4 layers, 8 heads / 2 kv heads, d = 64, 1024 tokens
  write_synth_dump((dir / "small.h5").string(), s, threads);

  // 100 jobs: 4 bits × 5 groups × 5 residuals of KIVI.
  std::ofstream(dir / "work.yaml") << "name: bench\ndumps: [small.h5]\nreplay: {eval_every: 16}\ncompressors:\n"
                                      "  - {method: kivi, bits: [2, 3, 4, 8], group: [8, 16, 32, 64, 128], "
                                      "residual: [0, 128, 256, 384, 512]}\n";
  // 100 near-empty jobs: one layer, no decode steps, no attention.
  std::ofstream(dir / "overhead.yaml") << "name: overhead\ndumps: [small.h5]\nmetrics: [reconstruction]\n"
                                          "replay: {layers: [0], max_steps: 0}\ncompressors:\n"
                                          "  - {method: uniform, bits: [1, 2, 3, 4, 5, 6, 7, 8, 2, 3], "
                                          "group: [0, 16, 32, 64, 8, 4, 2, 1, 24, 48]}\n";

  const std::string load_before = bench::load_average();
  std::vector<double> t1, tn, speedup, overhead;
  for (int i = 0; i < runs; ++i) {
    t1.push_back(run((dir / "work.yaml").string(), dir / "r1", 1));
    tn.push_back(run((dir / "work.yaml").string(), dir / "rn", threads));
    speedup.push_back(t1.back() / tn.back());
    overhead.push_back(run((dir / "overhead.yaml").string(), dir / "ro", 1) / 100);
  }
  const bench::Stats s1 = bench::stats_of(t1), sn = bench::stats_of(tn), sp = bench::stats_of(speedup),
                     ov = bench::stats_of(overhead);
  fmt::print("bench_sweep: 100 KIVI jobs on a 4-layer, 2-kv-head, 1024-token dump (eval every 16 steps)\n");
  fmt::print("  command: {}\n", args.command());
  fmt::print("  load average before / after: {} / {}\n", load_before, bench::load_average());
  fmt::print("  1 thread:          {}\n", seconds(s1));
  fmt::print("  {} threads:         {}\n", threads, seconds(sn));
  fmt::print("  speed-up, run by run: median {:.2f}x (min {:.2f}, max {:.2f}); target >= 1.8x with 2 threads\n",
             sp.median, sp.min, sp.max);
  fmt::print("  overhead per job:  {} (100 near-empty jobs on 1 thread: plan, dump header, scheduling, CSV; "
             "target < 5 ms)\n",
             bench::ms(ov, 2));
  fs::remove_all(dir);
  return 0;
}
