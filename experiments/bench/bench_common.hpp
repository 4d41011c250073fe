#pragma once
// Shared pieces of the benchmarks: a 7B-shaped layer, timing, and the memory
// floor (time to read and write the same bytes) measured in the same run.
#include <fmt/format.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <vector>

#include "kvlab/core/rng.hpp"
#include "kvlab/core/types.hpp"

namespace kvlab::bench {

struct Layer {
  std::vector<Matrix> keys, values;  // heads × [T × d]
};

// Gaussian keys/values with a few large key channels (as in RoPE models).
inline Layer make_layer(int heads, int tokens, int dim, std::uint64_t seed = 1) {
  Layer l;
  l.keys.resize(heads);
  l.values.resize(heads);
#pragma omp parallel for
  for (int h = 0; h < heads; ++h) {
    Rng rng = Rng::for_block(seed, 0, h);
    l.keys[h].resize(tokens, dim);
    l.values[h].resize(tokens, dim);
    for (int t = 0; t < tokens; ++t)
      for (int c = 0; c < dim; ++c) {
        l.keys[h](t, c) = static_cast<float>(rng.normal() * (c % 37 == 3 ? 8.0 : 1.0));
        l.values[h](t, c) = static_cast<float>(rng.normal());
      }
  }
  return l;
}

// Best wall time of `repeats` runs, in seconds.
inline double best_time(int repeats, const std::function<void()>& fn) {
  double best = 1e30;
  for (int i = 0; i < repeats; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

// Copy K and V into preallocated buffers: reads and writes the bytes a
// compressor must at least read (input) and write (reconstruction), at memory
// bandwidth (no page faults in the timed region).
inline double memory_floor(const Layer& l, int threads, int repeats) {
  const int heads = static_cast<int>(l.keys.size());
  static std::vector<Matrix> k, v;
  k.resize(heads);
  v.resize(heads);
  for (int h = 0; h < heads; ++h) {
    k[h].resize(l.keys[h].rows(), l.keys[h].cols());
    v[h].resize(l.values[h].rows(), l.values[h].cols());
    k[h].setZero();
    v[h].setZero();
  }
  return best_time(repeats, [&] {
#pragma omp parallel for num_threads(threads)
    for (int h = 0; h < heads; ++h) {
      k[h] = l.keys[h];
      v[h] = l.values[h];
    }
  });
}

}  // namespace kvlab::bench
