// Replays one 7B-shaped layer (32 kv heads, K and V each [4096 × 128]) through
// KIVI 2-bit (prefill of the whole sequence: compress + reconstruct) and
// compares with the memory floor measured interleaved in the same run; median,
// min and max over the runs.
//   usage: bench_kivi [--threads N] [--runs R] [--spec S]
#include "bench_common.hpp"
#include "kvlab/compressors/registry.hpp"
#include "kvlab/core/allocator.hpp"

using namespace kvlab;

int main(int argc, char** argv) {
  kvlab::tune_allocator();
  const bench::Args args(argc, argv, {"--threads", "--runs", "--spec"}, {},
                         "bench_kivi [--threads N] [--runs R] [--spec S]");
  const int threads = args.get_int("--threads", 2), runs = std::max(1, args.get_int("--runs", 11));
  const std::string spec = args.get("--spec", "kivi:bits=2,group=32,residual=128");
  const int heads = 32, tokens = 4096, dim = 128;
  const bench::Layer layer = bench::make_layer(heads, tokens, dim);
  const auto compressor = Registry::global().build(spec);

  std::vector<std::unique_ptr<CacheState>> states(heads);
  auto replay = [&] {
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
    for (int h = 0; h < heads; ++h) {
      BlockContext ctx;
      ctx.kv_head = h;
      ctx.head_dim = dim;
      ctx.max_tokens = tokens;
      states[h] = compressor->new_state(ctx);
      states[h]->prefill(layer.keys[h], layer.values[h], {});
    }
  };
  const std::string load_before = bench::load_average();
  bench::MemoryFloor floor(layer, threads);
  replay();  // warm-up: allocator and page faults
  floor.run();
  std::vector<double> t_kivi, t_floor;
  for (int i = 0; i < runs; ++i) {
    t_floor.push_back(floor.run());
    t_kivi.push_back(bench::seconds_of(replay));
  }
  std::uint64_t bits = 0, hash = 1469598103934665603ULL;
  for (const auto& s : states) {
    bits += s->bits().total();
    const CacheView v = s->view();
    hash = bench::hash_bits(v.values, bench::hash_bits(v.keys, hash));
  }
  std::vector<double> ratios;
  for (int i = 0; i < runs; ++i) ratios.push_back(t_kivi[i] / t_floor[i]);
  const bench::Stats k = bench::stats_of(t_kivi), f = bench::stats_of(t_floor), r = bench::stats_of(ratios);
  const double elements = 2.0 * heads * tokens * dim;
  fmt::print("bench_kivi: {} on one 7B-shaped layer ({} kv heads, K and V [{} x {}] each), prefill, {} thread{}\n",
             compressor->spec(), heads, tokens, dim, threads, threads == 1 ? "" : "s");
  fmt::print("  command: {}\n", args.command());
  fmt::print("  load average before / after: {} / {}\n", load_before, bench::load_average());
  fmt::print("  kivi layer (compress+reconstruct):  {}\n", bench::ms(k, 2));
  fmt::print("  memory floor (copy K,V), same run:  {}  ({:.1f} GB/s read+write at the median)\n", bench::ms(f, 2),
             floor.bytes() / f.median / 1e9);
  const char* verdict = r.median <= 1.5 ? "; target <= 1.5x: met" : "; target <= 1.5x: NOT met";
  fmt::print("  ratio to the floor, run by run:     median {:.2f}x (min {:.2f}, max {:.2f}){}\n", r.median, r.min,
             r.max, threads == 2 ? verdict : "");
  fmt::print("  compression ratio:                  {:.3f}x ({:.3f} bits/element)\n",
             16.0 * elements / static_cast<double>(bits), static_cast<double>(bits) / elements);
  fmt::print("  reconstruction hash: {:016x} (bitwise; equal for every thread count)\n", hash);
  return 0;
}
