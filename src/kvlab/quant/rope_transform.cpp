#include "kvlab/quant/rope_transform.hpp"

#include <cmath>
#include <vector>

#include "kvlab/core/error.hpp"

namespace kvlab {

void rope_rotate(MatrixRef x, const RopeInfo& rope, int first_position, bool inverse) {
  const int n = static_cast<int>(x.rows()), d = static_cast<int>(x.cols());
  if (rope.style == RopeStyle::None) fail("RoPE transform needs rope_style neox or gptj");
  const int rd = rope.rotated_channels(d);
  if (rd % 2 != 0 || rd > d) fail("RoPE transform needs an even rotary_dim <= head_dim {}, found {}", d, rd);
  const int half = rd / 2;
  const std::vector<double> inv_freq = rope.frequencies(d);
  if (static_cast<int>(inv_freq.size()) != half)
    fail("RoPE transform: {} frequencies for rotary_dim {}", inv_freq.size(), rd);
  const double sign = inverse ? -1.0 : 1.0;
  // a = 1 (every dump before rope_attention_scaling) leaves the products as they were.
  const bool scaled = rope.attention_scaling != 1.0;
  const double a = rope.attention_scaling;
  for (int r = 0; r < n; ++r) {
    const double pos = static_cast<double>(first_position + r);
    float* row = x.row(r).data();
    for (int i = 0; i < half; ++i) {
      const auto [ia, ib] = rope.pair(i, d);
      const double ang = pos * inv_freq[static_cast<std::size_t>(i)];
      const double c = std::cos(ang), s = sign * std::sin(ang);
      const double x1 = row[ia], x2 = row[ib];
      double y1 = x1 * c - x2 * s, y2 = x2 * c + x1 * s;
      if (scaled) {
        y1 = inverse ? y1 / a : y1 * a;
        y2 = inverse ? y2 / a : y2 * a;
      }
      row[ia] = static_cast<float>(y1);
      row[ib] = static_cast<float>(y2);
    }
  }
}

}  // namespace kvlab
