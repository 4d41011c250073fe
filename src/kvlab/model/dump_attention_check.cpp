#include "kvlab/model/dump_attention_check.hpp"

#include <cmath>

#include "kvlab/core/error.hpp"

namespace kvlab {

namespace {

// float32 frequencies are stored exactly in the dump; the forward computes its
// own in float32 too, so they agree to float rounding.
constexpr double kFrequencyRtol = 1e-6;

}  // namespace

void check_forward_attention(const DumpInfo& info, const ModelConfig& c, int positions) {
  const char* forward = "the kvlab-model forward (Llama attention)";
  const int d = info.head_dim;
  if (info.attn_scale) {
    const double expected = 1.0 / std::sqrt(static_cast<double>(d));
    if (std::abs(*info.attn_scale / expected - 1.0) > 1e-9)
      fail("{}: attn_scale {} is not 1/sqrt(head_dim) = {}, the only scale {} computes", info.path,
           *info.attn_scale, expected, forward);
  }
  if (info.attn_logit_softcap)
    fail("{}: attn_logit_softcap {}: {} has no logit soft-cap", info.path, *info.attn_logit_softcap, forward);
  for (int layer = 0; layer < info.num_layers; ++layer) {
    const AttentionRule rule = info.attention(layer);
    if (rule.window > 0 && rule.window < positions)
      fail("{}: /layers/{} sliding_window {} (< {} positions): {} attends to every earlier position", info.path,
           layer, rule.window, positions, forward);
    const std::optional<RopeInfo> rope = info.rope_of(layer);
    if (!rope) continue;  // nothing recorded: the K/V check compares what the forward stores
    if (rope->rotated_channels(d) != d)
      fail("{}: rotary_dim {} < head_dim {}: {} rotates the whole head", info.path, rope->rotary_dim, d, forward);
    if (rope->attention_scaling != 1.0)
      fail("{}: layer {} rope_attention_scaling {}: {} does not scale RoPE", info.path, layer,
           rope->attention_scaling, forward);
    if (rope->inv_freq.empty()) continue;  // rope_theta alone: as before, the K/V check compares
    if (rope->style != RopeStyle::None && rope->style != c.rope_style)
      fail("{}: rope_style {} differs from the model's {}", info.path, to_string(rope->style),
           to_string(c.rope_style));
    const std::vector<double> dumped = rope->frequencies(d);
    for (int i = 0; i < d / 2; ++i) {
      const double own = std::pow(c.rope_theta, -2.0 * i / d);
      const double got = dumped[static_cast<std::size_t>(i)];
      if (std::abs(got / own - 1.0) > kFrequencyRtol)
        fail("{}: layer {} RoPE frequency {} is {}, but the model's rope_theta {} gives {}: {} computes RoPE "
             "from rope_theta only",
             info.path, layer, i, got, c.rope_theta, own, forward);
    }
  }
}

}  // namespace kvlab
