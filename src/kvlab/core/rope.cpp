#include "kvlab/core/rope.hpp"

#include <cmath>
#include <utility>

#include "kvlab/core/error.hpp"

namespace kvlab {

std::vector<double> RopeInfo::frequencies(int head_dim) const {
  if (!inv_freq.empty()) return inv_freq;
  const int rd = rotated_channels(head_dim);
  std::vector<double> w(static_cast<std::size_t>(rd / 2));
  for (int i = 0; i < rd / 2; ++i) w[static_cast<std::size_t>(i)] = std::pow(theta, -2.0 * i / rd);
  return w;
}

std::pair<int, int> RopeInfo::pair(int i, int head_dim) const {
  if (style == RopeStyle::Gptj) return {2 * i, 2 * i + 1};
  return {i, i + rotated_channels(head_dim) / 2};
}

RopeStyle parse_rope_style(const std::string& text) {
  if (text == "neox") return RopeStyle::Neox;
  if (text == "gptj") return RopeStyle::Gptj;
  if (text == "none" || text.empty()) return RopeStyle::None;
  fail("unknown rope_style '{}' (expected neox or gptj)", text);
}

const char* to_string(RopeStyle style) {
  switch (style) {
    case RopeStyle::Neox: return "neox";
    case RopeStyle::Gptj: return "gptj";
    case RopeStyle::None: break;
  }
  return "none";
}

}  // namespace kvlab
