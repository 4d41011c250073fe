#include "kvlab/metrics/attention.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kvlab/attention/softmax.hpp"

namespace kvlab {

namespace {
// o = p·V in double, [d].
void weighted_sum(const std::vector<double>& p, ConstMatrixRef values, std::vector<double>& out) {
  const int d = static_cast<int>(values.cols());
  out.assign(static_cast<std::size_t>(d), 0.0);
  for (Eigen::Index i = 0; i < values.rows(); ++i) {
    if (p[i] == 0.0) continue;
    const float* v = values.row(i).data();
    for (int c = 0; c < d; ++c) out[c] += p[i] * v[c];
  }
}
}  // namespace

AttentionError compare_attention(const float* ref_logits, const float* hat_logits, ConstMatrixRef values,
                                 ConstMatrixRef values_hat, const std::uint8_t* present, double scale) {
  const int n = static_cast<int>(values.rows());
  thread_local std::vector<double> p, p_hat, o, o_hat;
  softmax(ref_logits, n, scale, nullptr, p);
  softmax(hat_logits, n, scale, present, p_hat);

  AttentionError e;
  double kept = 0.0;
  for (int i = 0; i < n; ++i) {
    if (present != nullptr && !present[i])
      e.dropped_mass += p[i];
    else
      kept += p[i];
  }
  if (e.dropped_mass == 0.0) kept = 1.0;  // Σp is 1 up to rounding; keep fp16 exact
  if (kept > 0.0) {
    for (int i = 0; i < n; ++i) {
      if ((present != nullptr && !present[i]) || p[i] == 0.0) continue;
      const double pk = p[i] / kept;
      e.kl += pk * (std::log(pk) - std::log(p_hat[i]));
    }
  }
  e.kl = std::max(e.kl, 0.0);  // KL ≥ 0; only rounding can push it below
  for (int i = 0; i < n; ++i)
    if (p_hat[i] > 0.0) e.kl_rev += p_hat[i] * (std::log(p_hat[i]) - std::log(p[i]));
  e.kl_rev = std::max(e.kl_rev, 0.0);
  weighted_sum(p, values, o);
  weighted_sum(p_hat, values_hat, o_hat);
  double diff = 0.0, norm = 0.0;
  for (std::size_t c = 0; c < o.size(); ++c) {
    diff += (o[c] - o_hat[c]) * (o[c] - o_hat[c]);
    norm += o[c] * o[c];
  }
  e.out_rel = norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff);
  return e;
}

}  // namespace kvlab
