#pragma once
// Rotary position embedding metadata as recorded in a dump.
#include <optional>
#include <string>

namespace kvlab {

enum class RopeStyle { None, Neox, Gptj };  // neox = rotate-half, gptj = interleaved pairs

struct RopeInfo {
  double theta = 10000.0;
  RopeStyle style = RopeStyle::None;
};

RopeStyle parse_rope_style(const std::string& text);  // throws kvlab::Error on unknown
const char* to_string(RopeStyle style);

}  // namespace kvlab
