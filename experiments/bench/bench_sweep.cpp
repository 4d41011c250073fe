// A 100-job sweep on a small synthetic dump: speed-up of 2 threads over 1 and
// the fixed overhead per job (plan, scheduling, CSV) measured with jobs that
// do almost no replay work.
//   usage: bench_sweep [threads]
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "kvlab/core/allocator.hpp"
#include "bench_common.hpp"
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

}  // namespace

int main(int argc, char** argv) {
  kvlab::tune_allocator();
  const int threads = argc > 1 ? std::atoi(argv[1]) : 2;
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

  const double t1 = std::min(run((dir / "work.yaml").string(), dir / "r1", 1), run((dir / "work.yaml").string(), dir / "r1", 1));
  const double tn = std::min(run((dir / "work.yaml").string(), dir / "rn", threads),
                             run((dir / "work.yaml").string(), dir / "rn", threads));
  const double overhead = std::min(run((dir / "overhead.yaml").string(), dir / "ro", 1),
                                   run((dir / "overhead.yaml").string(), dir / "ro", 1));
  fmt::print("bench_sweep: 100 KIVI jobs on a 4-layer, 2-kv-head, 1024-token dump (eval every 16 steps)\n");
  fmt::print("  1 thread:            {:8.3f} s\n", t1);
  fmt::print("  {} threads:           {:8.3f} s\n", threads, tn);
  fmt::print("  speed-up:            {:8.2f}x  (target >= 1.8x with 2 threads)\n", t1 / tn);
  fmt::print("  overhead per job:    {:8.2f} ms (100 near-empty jobs: plan, dump header, scheduling, CSV; target < 5 ms)\n",
             overhead * 1e3 / 100);
  fs::remove_all(dir);
  return 0;
}
