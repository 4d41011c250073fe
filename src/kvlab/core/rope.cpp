#include "kvlab/core/rope.hpp"

#include "kvlab/core/error.hpp"

namespace kvlab {

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
