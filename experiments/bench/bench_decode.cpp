// Decode throughput of the model-in-the-loop forward (LlamaForward), with the
// KV cache in fp16 states vs. compressed states.
//
//   bench_decode [--threads N] [--context T] [--steps S] [--rounds R] [--model PATH] [--no-large] [--no-tiny]
//
// Models: the bundled tiny model (data/tiny-lm/model.h5, if present) and a
// randomly initialised 0.5B-parameter Llama-shaped model built in memory
// (24 layers, hidden 896, 14 heads, 2 kv heads, head_dim 64, FFN 4864,
// vocab 32000, tied embeddings). For each: prefill a T-token context (default
// 512), then time R interleaved rounds of S greedy decode steps per cache;
// report tokens/s (median, min and max over the rounds) and the overhead
// factor of each compressor's median decode time relative to fp16 states.
#include <fmt/format.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "bench_common.hpp"
#include "kvlab/core/allocator.hpp"
#include "kvlab/compressors/registry.hpp"
#include "kvlab/core/error.hpp"
#include "kvlab/core/rng.hpp"
#include "kvlab/model/llama_forward.hpp"
#include "kvlab/model/model_file.hpp"

using namespace kvlab;
using Clock = std::chrono::steady_clock;

namespace {

// Prefills each cache once, then times `rounds` interleaved rounds of `steps`
// greedy decode steps per cache (the machine may be shared; interleaving
// exposes every cache to the same load).
void bench_model(const std::string& name, const ModelWeights& w, int context, int steps, int threads, int rounds) {
  const ModelConfig& c = w.config;
  fmt::print("\n{}: {:.1f} M parameters ({} layers, hidden {}, {}/{} heads, d={}, ffn {}, vocab {}); context {}, "
             "{} rounds x {} decode steps, {} threads\n",
             name, static_cast<double>(c.parameter_count()) / 1e6, c.num_layers, c.hidden_size, c.num_heads,
             c.num_kv_heads, c.head_dim, c.intermediate_size, c.vocab_size, context, rounds, steps, threads);
  std::vector<std::string> names;
  std::vector<std::unique_ptr<Compressor>> comps;
  for (const char* spec : {"fp16", "kivi-2bit", "gear-2bit"}) {
    try {
      comps.push_back(Registry::global().build(spec));
      names.push_back(spec);
    } catch (const Error& e) {
      fmt::print("  {:<12} skipped: {}\n", spec, e.what());
    }
  }
  Rng rng(42);
  std::vector<std::int64_t> prompt(static_cast<std::size_t>(context));
  for (auto& t : prompt) t = static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(c.vocab_size)));
  ForwardOptions fo;
  fo.max_tokens = context + rounds * steps;
  fo.threads = threads;
  std::vector<std::unique_ptr<LlamaForward>> fwd;
  std::vector<double> prefill_s;
  std::vector<std::vector<double>> per_token(comps.size());  // seconds per token, one per round
  for (const auto& comp : comps) {
    fwd.push_back(std::make_unique<LlamaForward>(w, *comp, fo));
    const auto t0 = Clock::now();
    fwd.back()->prefill(prompt);
    prefill_s.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
  }
  for (int r = 0; r < rounds; ++r)
    for (std::size_t k = 0; k < fwd.size(); ++k) {
      const auto t0 = Clock::now();
      for (int s = 0; s < steps; ++s) {
        Eigen::Index i = 0;
        fwd[k]->logits().maxCoeff(&i);
        fwd[k]->step(i);
      }
      per_token[k].push_back(std::chrono::duration<double>(Clock::now() - t0).count() / steps);
    }
  fmt::print("  {:<12} {:>10} {:>34} {:>12} {:>10}\n", "cache", "prefill s", "decode tok/s median (min-max)",
             "ms/token", "overhead");
  const double fp16_median = bench::stats_of(per_token[0]).median;
  for (std::size_t k = 0; k < fwd.size(); ++k) {
    std::vector<double> rate;
    for (double t : per_token[k]) rate.push_back(1.0 / t);
    const bench::Stats r = bench::stats_of(rate), t = bench::stats_of(per_token[k]);
    fmt::print("  {:<12} {:>10.2f} {:>34} {:>12.2f} {:>9.3f}x\n", names[k], prefill_s[k],
               fmt::format("{:.2f} ({:.2f}-{:.2f})", r.median, r.min, r.max), 1e3 * t.median,
               t.median / fp16_median);
  }
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  kvlab::tune_allocator();
  int threads = 2, context = 512, steps = 16, rounds = 5;
  bool large = true, tiny = true;
  std::string model = "data/tiny-lm/model.h5";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        fmt::print(stderr, "bench_decode: {} needs a value\n", a);
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--threads") threads = std::stoi(next());
    else if (a == "--context") context = std::stoi(next());
    else if (a == "--steps") steps = std::stoi(next());
    else if (a == "--model") model = next();
    else if (a == "--rounds") rounds = std::stoi(next());
    else if (a == "--no-large") large = false;
    else if (a == "--no-tiny") tiny = false;
    else {
      fmt::print(stderr, "usage: bench_decode [--threads N] [--context T] [--steps S] [--rounds R] [--model PATH] "
                         "[--no-large] [--no-tiny]\n");
      return 2;
    }
  }
  try {
    std::string command = argv[0];
    for (int i = 1; i < argc; ++i) command += std::string(" ") + argv[i];
    fmt::print("bench_decode\n  command: {}\n  load average at start: {}\n", command, bench::load_average());
    if (!tiny) {
    } else if (std::filesystem::exists(model)) {
      const ModelWeights w = load_model(model);
      bench_model(model, w, context, std::max(steps, 128), threads, rounds);
    } else {
      fmt::print("bundled model {} not found (run from the source root); skipped\n", model);
    }
    if (large) {
      ModelConfig c;
      c.model = "random 0.5B Llama-shaped";
      c.num_layers = 24;
      c.hidden_size = 896;
      c.num_heads = 14;
      c.num_kv_heads = 2;
      c.head_dim = 64;
      c.intermediate_size = 4864;
      c.vocab_size = 32000;
      c.rope_theta = 1000000.0;
      c.rope_style = RopeStyle::Neox;
      c.tie_word_embeddings = true;
      const auto t0 = Clock::now();
      const ModelWeights w = random_model(c, 1);
      fmt::print("\n(built the random 0.5B model in memory in {:.1f} s)\n",
                 std::chrono::duration<double>(Clock::now() - t0).count());
      bench_model("random-0.5B", w, context, steps, threads, rounds);
    }
  } catch (const Error& e) {
    fmt::print(stderr, "bench_decode: error: {}\n", e.what());
    return 1;
  }
  return 0;
}
