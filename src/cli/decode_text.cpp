#include "cli/decode_text.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace kvlab::cli {

namespace {

std::string pad(const std::string& s, int width) {
  return s + std::string(static_cast<std::size_t>(std::max(0, width - printable_width(s))), ' ');
}

// The last code points of a printable string, at most `width` columns.
std::string tail(const std::string& s, int width) {
  std::size_t i = s.size();
  int w = 0;
  while (i > 0 && w < width) {
    --i;
    while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
    ++w;
  }
  return (i > 0 ? "…" : "") + s.substr(i);
}

}  // namespace

std::string side_by_side(const Vocabulary& vocab, const std::vector<std::int64_t>& prompt,
                         const std::vector<std::int64_t>& left, const std::vector<std::int64_t>& right,
                         int first_divergence, const SideBySide& layout) {
  const int W = layout.column_width;
  std::string out = fmt::format("  prompt ends: {}\n", tail(printable(vocab.decode(prompt)), 2 * W));
  out += fmt::format("  {} │ {}\n", pad(layout.left_label, W), layout.right_label);
  const std::size_t n = std::min({left.size(), right.size(), static_cast<std::size_t>(layout.max_tokens)});
  // Each row covers the same steps on both sides and ends when either side is
  // full. Rows are kept as raw bytes (so a character split over byte tokens
  // prints whole), with the divergence mark between two byte runs.
  struct Side {
    std::string before, after;  // raw bytes before / from the marked token
    bool marked = false;
    std::string render() const { return printable(before) + (marked ? "»" + printable(after) : ""); }
    Side with(const std::string& token, bool mark) const {
      Side s = *this;
      if (mark) s.marked = true;
      (s.marked ? s.after : s.before) += token;
      return s;
    }
    bool empty() const { return before.empty() && !marked; }
  };
  Side l, r;
  auto flush = [&] {
    out += fmt::format("  {} │ {}\n", pad(l.render(), W), r.render());
    l = r = Side{};
  };
  for (std::size_t i = 0; i < n; ++i) {
    const bool mark = static_cast<int>(i) == first_divergence;
    Side nl = l.with(vocab.token(left[i]), mark), nr = r.with(vocab.token(right[i]), mark);
    if ((!l.empty() || !r.empty()) &&
        (printable_width(nl.render()) > W || printable_width(nr.render()) > W)) {
      flush();
      nl = l.with(vocab.token(left[i]), mark);
      nr = r.with(vocab.token(right[i]), mark);
    }
    l = std::move(nl);
    r = std::move(nr);
  }
  if (!l.empty() || !r.empty()) flush();
  if (n < std::max(left.size(), right.size()))
    out += fmt::format("  ({} more tokens not shown; --show-tokens)\n", std::max(left.size(), right.size()) - n);
  return out;
}

}  // namespace kvlab::cli
