#pragma once
// What a kvdump file holds (docs/dump-format.md), and the tensors of one layer.
#include <optional>
#include <string>
#include <vector>

#include "kvlab/core/attention_rule.hpp"
#include "kvlab/core/rope.hpp"
#include "kvlab/core/types.hpp"

namespace kvlab {

struct DumpInfo {
  std::string path;
  int num_layers = 0, num_heads = 0, num_kv_heads = 0, head_dim = 0, seq_len = 0, prompt_len = 0;
  std::string model, text;  // optional attributes ("" when absent)
  // Set iff the root attribute rope_theta or the dataset /rope_inv_freq is
  // present (theta 0 without rope_theta); style from rope_style, or
  // RopeStyle::None when rope_style is absent. Layer overrides: rope_of().
  std::optional<RopeInfo> rope;
  // Optional attention description (docs/dump-format.md, "Attention and
  // RoPE"), read by io/attention_attrs.cpp; absent = the old defaults.
  std::optional<double> attn_scale, attn_logit_softcap;
  struct LayerAttention {
    int sliding_window = 0;                  // 0 = full causal attention
    std::vector<double> rope_inv_freq;       // /layers/L/rope_inv_freq; empty = the root's
    std::optional<double> rope_attention_scaling;
  };
  std::vector<LayerAttention> layer_attention;
  RopeStyle rope_style = RopeStyle::None;  // the root attribute, also when rope is unset
  int rotary_dim = 0;                      // the root attribute; 0 when absent  // one per layer (empty entries when the dump has none)
  bool has_queries = false, has_tokens = false;
  std::string dtype;  // "float16" | "float32" | "float64" (of layer 0 keys)
  int group_size() const { return num_heads / num_kv_heads; }
  // Layer `layer`'s attention: scale, soft-cap and window, defaults resolved.
  AttentionRule attention(int layer) const;
  // Layer `layer`'s RoPE: the root's with the layer's frequencies and scaling.
  std::optional<RopeInfo> rope_of(int layer) const;
  // True when the dump carries any attribute of the attention description.
  bool describes_attention() const;
};

struct LayerData {
  int layer = 0;
  std::vector<Matrix> keys;     // num_kv_heads × [T × d]
  std::vector<Matrix> values;   // num_kv_heads × [T × d]
  std::vector<Matrix> queries;  // num_heads × [T × d]; empty when not read / absent
};

}  // namespace kvlab
