#include "kvlab/metrics/attention.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kvlab/metrics/attention_kernels.hpp"

namespace kvlab {

void cap_logits(const float* z, int n, double scale, double softcap, float* out) {
  for (int i = 0; i < n; ++i) out[i] = static_cast<float>(softcap * std::tanh(scale * z[i] / softcap));
}

AttentionError compare_scores(const ReferenceAttention& ref, const float* hat_logits, const std::uint8_t* present,
                              double scale, double* p_hat, std::vector<float>& capped) {
  // The visible positions [first, tokens) only; without a window or cap this
  // is the plain computation over [0, tokens).
  const int f = ref.first, n = ref.tokens - ref.first;
  const float* z_hat = hat_logits + f;
  if (ref.softcap > 0) {
    capped.resize(static_cast<std::size_t>(n));
    cap_logits(z_hat, n, scale, ref.softcap, capped.data());
    z_hat = capped.data();
    scale = 1.0;
  }
  std::fill(p_hat, p_hat + f, 0.0);
  const std::uint8_t* seen = present ? present + f : nullptr;
  const SoftmaxNorm hat = softmax_into(z_hat, n, scale, seen, p_hat + f);
  const ScoreSums s = score_sums(ref.logits + f, ref.p + f, ref.norm, z_hat, p_hat + f, hat, seen, n, scale);
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
  AttentionError e = compare_scores(ref, hat_logits, present, scale, scratch.p.data(), scratch.capped);
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
