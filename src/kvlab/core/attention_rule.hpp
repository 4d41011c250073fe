#pragma once
// What a layer's attention computes from the stored (post-RoPE) q and k
// (docs/dump-format.md, "Logits, soft-cap and window"):
//   s = scale · q·k;  with a soft-cap c: s ← c·tanh(s/c);
//   the query at position t sees keys j with t − W < j <= t (window W), or
//   j <= t without a window; p = softmax of s over the visible keys.
// The defaults are what kvlab assumed before dumps could say otherwise:
// 1/sqrt(head_dim), no cap, full causal attention.
#include <algorithm>
#include <cmath>

namespace kvlab {

struct AttentionRule {
  double scale = 0.0;    // factor on q·k; 0 = 1/sqrt(head_dim)
  double softcap = 0.0;  // c > 0: logits become c·tanh(s/c); 0 = none
  int window = 0;        // W >= 1: sliding window; 0 = none

  double scale_for(int head_dim) const {
    return scale > 0 ? scale : 1.0 / std::sqrt(static_cast<double>(head_dim));
  }
  bool capped() const { return softcap > 0; }
  // The first key position the query at `position` sees.
  int first_visible(int position) const { return window > 0 ? std::max(0, position - window + 1) : 0; }
  // The logit of a raw product z = q·k.
  double logit(double z, int head_dim) const {
    const double s = scale_for(head_dim) * z;
    return capped() ? softcap * std::tanh(s / softcap) : s;
  }
};

}  // namespace kvlab
