#include "kvlab/quant/rope_transform.hpp"

#include <cmath>
#include <vector>

#include "kvlab/core/error.hpp"

namespace kvlab {

void rope_rotate(MatrixRef x, const RopeInfo& rope, int first_position, bool inverse) {
  const int n = static_cast<int>(x.rows()), d = static_cast<int>(x.cols());
  if (rope.style == RopeStyle::None) fail("RoPE transform needs rope_style neox or gptj");
  if (d % 2 != 0) fail("RoPE transform needs an even head_dim, found {}", d);
  const int half = d / 2;
  std::vector<double> inv_freq(half);
  for (int i = 0; i < half; ++i) inv_freq[i] = std::pow(rope.theta, -2.0 * i / d);
  const bool gptj = rope.style == RopeStyle::Gptj;
  const double sign = inverse ? -1.0 : 1.0;
  for (int r = 0; r < n; ++r) {
    const double pos = static_cast<double>(first_position + r);
    float* row = x.row(r).data();
    for (int i = 0; i < half; ++i) {
      const int ia = gptj ? 2 * i : i, ib = gptj ? 2 * i + 1 : i + half;
      const double ang = pos * inv_freq[i];
      const double c = std::cos(ang), s = sign * std::sin(ang);
      const double a = row[ia], b = row[ib];
      row[ia] = static_cast<float>(a * c - b * s);
      row[ib] = static_cast<float>(b * c + a * s);
    }
  }
}

}  // namespace kvlab
