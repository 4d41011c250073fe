#pragma once
// Tidy CSV helpers: RFC 4180 quoting, and numbers printed as the shortest text
// that round-trips (so equal numbers give byte-identical files); NaN is blank.
#include <fmt/format.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kvlab {

inline std::string csv_field(std::string_view s) {
  if (s.find_first_of(",\"\n\r") == std::string_view::npos) return std::string(s);
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + '"';
}

inline std::string csv_number(double v) {
  if (std::isnan(v)) return {};
  return fmt::format("{}", v);
}
inline std::string csv_number(std::uint64_t v) { return fmt::format("{}", v); }
inline std::string csv_number(int v) { return fmt::format("{}", v); }

inline std::string csv_line(const std::vector<std::string>& fields) {
  std::string out;
  for (std::size_t i = 0; i < fields.size(); ++i) {
    if (i) out += ',';
    out += csv_field(fields[i]);
  }
  return out + '\n';
}

// Splits one CSV line (no embedded newlines) into fields.
std::vector<std::string> csv_split(std::string_view line);

}  // namespace kvlab
