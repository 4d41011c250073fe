#pragma once
#include <cstdint>
#include <vector>

namespace kvlab {

struct ReplayOptions {
  std::vector<int> layers;  // layers to replay; empty = all
  int eval_every = 1;       // evaluate every k-th decode step (0: only after prefill and at the end)
  int max_steps = -1;       // decode steps to replay; -1 = every recorded one
  bool attention = true;    // attention metrics (need queries in the dump)
  std::uint64_t seed = 0;   // seeds every random stream, with (layer, head)
  int threads = 0;          // 0 = OpenMP's default
  // K/V errors updated from the rows each state reports changed
  // (CacheReader::changes_since); false recomputes them over the whole cache
  // at every evaluated step. Results are identical either way (a test replays
  // every method both ways); false is the reference for that test.
  bool incremental = true;
};

// The decode steps at which metrics are taken: 0 (right after prefill, query
// of position P−1), every eval_every-th step, and always the last.
std::vector<int> evaluation_steps(int decode_steps, int eval_every);

}  // namespace kvlab
