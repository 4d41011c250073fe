#pragma once
// Minimal JSON text helpers for the few machine-readable outputs kvlab writes
// (`kvlab schema --json`, `kvlab list --json`): no parser, no DOM.
#include <cmath>
#include <string>
#include <string_view>

#include <fmt/format.h>

namespace kvlab {

inline std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20)
          out += fmt::format("\\u{:04x}", static_cast<unsigned char>(c));
        else
          out += c;
    }
  }
  return out + "\"";
}

// Numbers as the shortest text that round-trips; JSON has no inf/NaN: null.
inline std::string json_number(double v) { return std::isfinite(v) ? fmt::format("{}", v) : "null"; }

inline const char* json_bool(bool b) { return b ? "true" : "false"; }

}  // namespace kvlab
