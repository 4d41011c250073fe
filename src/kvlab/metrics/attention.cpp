#include "kvlab/metrics/attention.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kvlab/metrics/attention_kernels.hpp"

namespace kvlab {

SoftmaxNorm softmax_into(const float* logits, int n, double scale, const std::uint8_t* present, double* p) {
  std::fill(p, p + n, 0.0);
  double mx = -std::numeric_limits<double>::infinity();
  for (int i = 0; i < n; ++i)
    if (present == nullptr || present[i]) mx = std::max(mx, scale * logits[i]);
  if (!std::isfinite(mx)) return {mx, -std::numeric_limits<double>::infinity()};
  double sum = 0.0;
  for (int i = 0; i < n; ++i) {
    if (present != nullptr && !present[i]) continue;
    p[i] = std::exp(scale * logits[i] - mx);
    sum += p[i];
  }
  for (int i = 0; i < n; ++i) p[i] /= sum;
  return {mx, std::log(sum)};
}

AttentionError compare_scores(const ReferenceAttention& ref, const float* hat_logits, const std::uint8_t* present,
                              double scale, double* p_hat) {
  const int n = ref.tokens;
  const double* p = ref.p;
  const float* z = ref.logits;
  const SoftmaxNorm hat = softmax_into(hat_logits, n, scale, present, p_hat);

  AttentionError e;
  double kept = 0.0;
  for (int i = 0; i < n; ++i) {
    if (present != nullptr && !present[i])
      e.dropped_mass += p[i];
    else
      kept += p[i];
  }
  if (e.dropped_mass == 0.0) kept = 1.0;  // Σp is 1 up to rounding; keep fp16 exact
  if (std::isfinite(hat.log_sum)) {       // some position is present
    // With a_i = s·z_i − max: log p'_i − log p̂_i = (a_i − â_i) + (log Σ̂ − log Σ − log kept).
    if (kept > 0.0) {
      const double offset = hat.log_sum - ref.norm.log_sum - std::log(kept);
      for (int i = 0; i < n; ++i) {
        if ((present != nullptr && !present[i]) || p[i] == 0.0) continue;
        const double a = scale * z[i] - ref.norm.max, a_hat = scale * hat_logits[i] - hat.max;
        e.kl += p[i] / kept * ((a - a_hat) + offset);
      }
    }
    // log p̂_i − log p_i = (â_i − a_i) − (log Σ̂ − log Σ)
    const double rev_offset = hat.log_sum - ref.norm.log_sum;
    for (int i = 0; i < n; ++i) {
      if (!(p_hat[i] > 0.0)) continue;
      const double a = scale * z[i] - ref.norm.max, a_hat = scale * hat_logits[i] - hat.max;
      e.kl_rev += p_hat[i] * ((a_hat - a) - rev_offset);
    }
  }
  e.kl = std::max(e.kl, 0.0);  // KL ≥ 0; only rounding can push it below
  e.kl_rev = std::max(e.kl_rev, 0.0);
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
