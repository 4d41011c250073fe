#pragma once
// What replaying one block (layer, kv head) through one compressor yields.
#include <vector>

#include "kvlab/core/bit_count.hpp"
#include "kvlab/metrics/attention.hpp"
#include "kvlab/metrics/tensor_error.hpp"

namespace kvlab {

// Metrics at one evaluated decode step.
struct StepPoint {
  int decode_step = 0;     // 0 = right after prefill
  int position = 0;        // query position (P − 1 + decode_step)
  int tokens = 0;          // cache length at this point (position + 1)
  AttentionError attn;     // summed over the group's query heads
  int heads = 0;           // query heads evaluated (0 without queries)
  TensorError keys, values;
  std::uint64_t bits = 0;  // compressed size at this point
};

struct BlockResult {
  int layer = 0;
  int kv_head = 0;
  int tokens = 0;  // cache length at the end
  int head_dim = 0;
  bool keys_reconstructible = true;
  TensorError keys, values;  // final cache vs recorded
  BitCount bits;             // final
  AttentionError attn;       // summed over heads and evaluated steps
  int attn_evals = 0;        // number of (head, step) evaluations
  std::vector<StepPoint> steps;
};

}  // namespace kvlab
