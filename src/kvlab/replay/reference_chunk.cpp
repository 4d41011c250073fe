#include "kvlab/replay/reference_chunk.hpp"

#include <algorithm>
#include <cmath>

#include "kvlab/core/error.hpp"
#include "kvlab/metrics/attention_kernels.hpp"

namespace kvlab {

void ReferenceChunk::compute(const HeadInput& in, std::span<const int> positions, const AttentionRule& rule) {
  KVLAB_ASSERT(!positions.empty() && !in.queries.empty());
  positions_.assign(positions.begin(), positions.end());
  g_ = static_cast<int>(in.queries.size());
  d_ = static_cast<int>(in.keys.cols());
  width_ = positions_.back() + 1;
  KVLAB_ASSERT(width_ <= in.keys.rows() && std::is_sorted(positions_.begin(), positions_.end()));
  rule_ = rule;
  scale_ = rule.scale_for(d_);
  const int rows = steps() * g_;
  const auto w = static_cast<std::size_t>(width_);

  q_.resize(rows, d_);
  for (int s = 0; s < steps(); ++s)
    for (int j = 0; j < g_; ++j) q_.row(s * g_ + j) = in.queries[j].row(position(s));
  // Logits of every query over every key up to the last position (the few
  // past a query's own position are never read).
  logits_.resize(static_cast<std::size_t>(rows) * w);
  dot_logits(q_.data(), rows, q_.outerStride(), in.keys.data(), width_, in.keys.outerStride(), d_, logits_.data(),
             width_);
  p_.resize(static_cast<std::size_t>(rows) * w);
  norm_.resize(static_cast<std::size_t>(rows));
  // Each query's visible keys [first, position]: soft-capped in place when the
  // layer caps (then softmax scale 1), p = 0 before first.
  for (int r = 0; r < rows; ++r) {
    const int pos = position(r / g_), first = rule.first_visible(pos), n = pos + 1 - first;
    float* z = logits_.data() + r * w + first;
    double* p = p_.data() + r * w;
    if (rule.capped()) cap_logits(z, n, scale_, rule.softcap, z);
    std::fill(p, p + first, 0.0);
    norm_[r] = softmax_into(z, n, rule.capped() ? 1.0 : scale_, nullptr, p + first);
  }

  // o = p·V in weighted_row_sum's blocked order, each block of V shared by
  // every (step, head) that reaches it.
  o_.assign(static_cast<std::size_t>(rows) * static_cast<std::size_t>(d_), 0.0);
  part_.resize(static_cast<std::size_t>(rows) * static_cast<std::size_t>(d_));
  for (int b = 0; b < width_; b += kWeightedRowBlock) {
    const float* v = in.values.row(b).data();
    // Rows r whose cache covers the whole block share one call; the others
    // (their position falls inside it) take their own number of rows.
    int first = 0;
    while (first < rows && position(first / g_) + 1 <= b) ++first;
    int full = first;
    while (full < rows && position(full / g_) + 1 < b + kWeightedRowBlock) ++full;
    std::fill(part_.begin(), part_.end(), 0.0);
    for (int r = first; r < full; ++r)
      add_weighted_rows(p_.data() + r * w + b, 1, 0, v, position(r / g_) + 1 - b, in.values.outerStride(), d_,
                        part_.data() + r * d_, 0);
    if (full < rows)
      add_weighted_rows(p_.data() + full * w + b, rows - full, static_cast<std::ptrdiff_t>(w), v,
                        std::min(kWeightedRowBlock, width_ - b), in.values.outerStride(), d_, part_.data() + full * d_,
                        d_);
    for (int r = first; r < rows; ++r)
      for (int c = 0; c < d_; ++c) o_[r * d_ + c] += part_[r * d_ + c];
  }
  o_norm2_.assign(static_cast<std::size_t>(rows), 0.0);
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < d_; ++c) o_norm2_[r] += o_[r * d_ + c] * o_[r * d_ + c];
}

ReferenceAttention ReferenceChunk::at(int s, int j) const {
  const std::size_t r = static_cast<std::size_t>(s * g_ + j);
  const std::size_t w = static_cast<std::size_t>(width_);
  ReferenceAttention a;
  a.tokens = position(s) + 1;
  a.first = rule_.first_visible(position(s));
  a.softcap = rule_.softcap;
  a.logits = logits_.data() + r * w;
  a.p = p_.data() + r * w;
  a.norm = norm_[r];
  a.o = o_.data() + r * static_cast<std::size_t>(d_);
  a.o_norm2 = o_norm2_[r];
  return a;
}

}  // namespace kvlab
