#pragma once
// Rotary position embedding metadata as recorded in a dump
// (docs/dump-format.md, "RoPE").
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace kvlab {

enum class RopeStyle { None, Neox, Gptj };  // neox = rotate-half, gptj = interleaved pairs

struct RopeInfo {
  RopeInfo() = default;
  RopeInfo(double base, RopeStyle rope_style) : theta(base), style(rope_style) {}

  double theta = 10000.0;             // rope_theta; 0 when the dump gives only inv_freq
  RopeStyle style = RopeStyle::None;
  // The exact inverse frequencies ω_i (rotary_dim/2 of them, after any
  // scaling); empty: ω_i = theta^(−2i/rotary_dim).
  std::vector<double> inv_freq;
  int rotary_dim = 0;                 // channels [0, rotary_dim) rotate; 0 = the whole head
  double attention_scaling = 1.0;     // cos and sin were both multiplied by it (YaRN)

  // rotary_dim resolved against head_dim.
  int rotated_channels(int head_dim) const { return rotary_dim > 0 ? rotary_dim : head_dim; }
  // ω_i for i < rotated_channels(head_dim)/2.
  std::vector<double> frequencies(int head_dim) const;
  // Channel pair i: (first, second) rotated together.
  std::pair<int, int> pair(int i, int head_dim) const;
};

RopeStyle parse_rope_style(const std::string& text);  // throws kvlab::Error on unknown
const char* to_string(RopeStyle style);

}  // namespace kvlab
