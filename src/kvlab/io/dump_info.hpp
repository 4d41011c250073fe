#pragma once
// What a kvdump file holds (docs/dump-format.md), and the tensors of one layer.
#include <optional>
#include <string>
#include <vector>

#include "kvlab/core/rope.hpp"
#include "kvlab/core/types.hpp"

namespace kvlab {

struct DumpInfo {
  std::string path;
  int num_layers = 0, num_heads = 0, num_kv_heads = 0, head_dim = 0, seq_len = 0, prompt_len = 0;
  std::string model, text;  // optional attributes ("" when absent)
  // Set iff the root attribute rope_theta is present; style from rope_style,
  // or RopeStyle::None when rope_style is absent.
  std::optional<RopeInfo> rope;
  bool has_queries = false, has_tokens = false;
  std::string dtype;  // "float16" | "float32" | "float64" (of layer 0 keys)
  int group_size() const { return num_heads / num_kv_heads; }
};

struct LayerData {
  int layer = 0;
  std::vector<Matrix> keys;     // num_kv_heads × [T × d]
  std::vector<Matrix> values;   // num_kv_heads × [T × d]
  std::vector<Matrix> queries;  // num_heads × [T × d]; empty when not read / absent
};

}  // namespace kvlab
