#include "cli/cli_util.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "kvlab/core/error.hpp"

namespace kvlab::cli {

std::vector<int> parse_index_list(const std::string& text, const std::string& option) {
  std::vector<int> out;
  auto to_int = [&](const std::string& s) {
    try {
      std::size_t used = 0;
      const int v = std::stoi(s, &used);
      if (used != s.size() || v < 0) throw std::invalid_argument(s);
      return v;
    } catch (const std::exception&) {
      fail("{}: '{}' is not a non-negative integer (expected e.g. 0,2,5-7)", option, s);
    }
  };
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t comma = std::min(text.find(',', start), text.size());
    const std::string part = text.substr(start, comma - start);
    if (part.empty()) fail("{}: empty entry in '{}'", option, text);
    const std::size_t dash = part.find('-');
    if (dash == std::string::npos) {
      out.push_back(to_int(part));
    } else {
      const int a = to_int(part.substr(0, dash)), b = to_int(part.substr(dash + 1));
      if (b < a) fail("{}: range '{}' is empty", option, part);
      for (int i = a; i <= b; ++i) out.push_back(i);
    }
    start = comma + 1;
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::string format_table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width;
  for (const auto& r : rows) {
    if (width.size() < r.size()) width.resize(r.size(), 0);
    for (std::size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  }
  std::string out;
  for (std::size_t ri = 0; ri < rows.size(); ++ri) {
    for (std::size_t i = 0; i < rows[ri].size(); ++i) {
      out += fmt::format("{:<{}}", rows[ri][i], i + 1 < rows[ri].size() ? width[i] + 2 : 0);
    }
    out += '\n';
    if (ri == 0) {
      std::size_t total = 0;
      for (auto w : width) total += w + 2;
      out += std::string(total > 2 ? total - 2 : total, '-') + '\n';
    }
  }
  return out;
}

std::string pretty(double value) {
  if (std::isnan(value)) return "n/a";
  const double a = std::abs(value);
  if (a != 0 && (a < 1e-3 || a >= 1e6)) return fmt::format("{:.3e}", value);
  return fmt::format("{:.4f}", value);
}

}  // namespace kvlab::cli
