#include "kvlab/attention/scores.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kvlab/core/error.hpp"

namespace kvlab {

namespace {
constexpr int kRowChunk = 128;  // query rows per logits product (bounds the scratch to 128 × n)
}

void accumulate_attention_scores(std::span<const ConstMatrixRef> heads, int first_position, ConstMatrixRef keys,
                                 const std::uint8_t* present, std::span<double> scores,
                                 const AttentionRule& rule) {
  const int n = static_cast<int>(keys.rows());
  const int d = static_cast<int>(keys.cols());
  KVLAB_ASSERT(first_position >= 0);
  KVLAB_ASSERT(static_cast<int>(scores.size()) >= n);
  const double scale = rule.scale_for(d);
  const double cap = rule.softcap;
  // The logit of a product; without a cap exactly scale·z, as always.
  const auto logit = [&](float z) { return cap > 0 ? cap * std::tanh(scale * z / cap) : scale * z; };
  Matrix logits;
  std::vector<double> p;
  for (const ConstMatrixRef& q : heads) {
    KVLAB_ASSERT(q.cols() == d);
    const int m = static_cast<int>(q.rows());
    KVLAB_ASSERT(first_position + m <= n);
    for (int r0 = 0; r0 < m; r0 += kRowChunk) {
      const int rows = std::min(kRowChunk, m - r0);
      const int cols = first_position + r0 + rows;  // keys any row of the chunk can see
      logits.resize(rows, cols);
      logits.noalias() = q.middleRows(r0, rows) * keys.topRows(cols).transpose();
      for (int r = 0; r < rows; ++r) {
        const int visible = first_position + r0 + r + 1;  // positions [0, visible)
        const int seen = rule.first_visible(visible - 1);  // the window's first position
        const float* row = logits.row(r).data();
        double mx = -std::numeric_limits<double>::infinity();
        for (int j = seen; j < visible; ++j)
          if (present == nullptr || present[j] != 0) mx = std::max(mx, logit(row[j]));
        if (mx == -std::numeric_limits<double>::infinity()) continue;  // nothing present
        p.assign(static_cast<std::size_t>(visible), 0.0);
        double sum = 0.0;
        for (int j = seen; j < visible; ++j) {
          if (present != nullptr && present[j] == 0) continue;
          p[j] = std::exp(logit(row[j]) - mx);
          sum += p[j];
        }
        const double inv = 1.0 / sum;
        for (int j = 0; j < visible; ++j) scores[j] += p[j] * inv;
      }
    }
  }
}

std::vector<double> attention_scores(std::span<const ConstMatrixRef> heads, int first_position, ConstMatrixRef keys,
                                     const std::uint8_t* present, const AttentionRule& rule) {
  std::vector<double> s(static_cast<std::size_t>(keys.rows()), 0.0);
  accumulate_attention_scores(heads, first_position, keys, present, s, rule);
  return s;
}

}  // namespace kvlab
