#include "kvlab/metrics/attention.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kvlab/metrics/attention_kernels.hpp"

namespace kvlab {

AttentionError compare_scores(const ReferenceAttention& ref, const float* hat_logits, const std::uint8_t* present,
                              double scale, double* p_hat) {
  const SoftmaxNorm hat = softmax_into(hat_logits, ref.tokens, scale, present, p_hat);
  const ScoreSums s = score_sums(ref.logits, ref.p, ref.norm, hat_logits, p_hat, hat, present, ref.tokens, scale);
  AttentionError e;
  e.dropped_mass = s.dropped;
  e.kl = std::max(s.kl, 0.0);  // KL ≥ 0; only rounding can push it below
  e.kl_rev = std::max(s.kl_rev, 0.0);
  return e;
}

double output_error(const ReferenceAttention& ref, const double* o_hat, int d) {
  double diff = 0.0;
  for (int c = 0; c < d; ++c) diff += (ref.o[c] - o_hat[c]) * (ref.o[c] - o_hat[c]);
  return ref.o_norm2 > 0 ? std::sqrt(diff / ref.o_norm2) : std::sqrt(diff);
}

AttentionError compare_attention(const ReferenceAttention& ref, const float* hat_logits, ConstMatrixRef values_hat,
                                 const std::uint8_t* present, double scale, AttentionScratch& scratch) {
  scratch.p.resize(static_cast<std::size_t>(ref.tokens));
  AttentionError e = compare_scores(ref, hat_logits, present, scale, scratch.p.data());
  const int d = static_cast<int>(values_hat.cols());
  scratch.o.resize(static_cast<std::size_t>(d));
  weighted_row_sum(scratch.p.data(), values_hat, scratch.o.data());
  e.out_rel = output_error(ref, scratch.o.data(), d);
  return e;
}

AttentionError compare_attention(const float* ref_logits, const float* hat_logits, ConstMatrixRef values,
                                 ConstMatrixRef values_hat, const std::uint8_t* present, double scale) {
  const int n = static_cast<int>(values.rows());
  std::vector<double> p(static_cast<std::size_t>(n)), o(static_cast<std::size_t>(values.cols()));
  ReferenceAttention ref;
  ref.tokens = n;
  ref.logits = ref_logits;
  ref.p = p.data();
  ref.norm = softmax_into(ref_logits, n, scale, nullptr, p.data());
  weighted_row_sum(p.data(), values, o.data());
  ref.o = o.data();
  for (double x : o) ref.o_norm2 += x * x;
  AttentionScratch scratch;
  return compare_attention(ref, hat_logits, values_hat, present, scale, scratch);
}

}  // namespace kvlab
