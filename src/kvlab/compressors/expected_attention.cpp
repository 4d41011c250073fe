// expected-attention: the attention future queries are expected to pay, from
// the statistics of the recorded queries, RoPE-aware (Devoto et al. 2025,
// "Expected Attention: KV Cache Compression by Estimating Attention from Future
// Queries Distribution"), docs/methods/eviction.md.
#include "kvlab/compressors/expected_attention.hpp"

#include <algorithm>
#include <cmath>
#include <complex>

#include "kvlab/compressors/scored_dropper.hpp"
#include "kvlab/core/error.hpp"
#include "kvlab/quant/rope_transform.hpp"

namespace kvlab {

MatrixD mean_rope_rotation(const RopeInfo& rope, int d, int first, int count) {
  MatrixD r = MatrixD::Identity(d, d);
  if (rope.style == RopeStyle::None) return r;
  const int rd = rope.rotated_channels(d);
  KVLAB_ASSERT(rd % 2 == 0 && rd <= d && count >= 1);
  const std::vector<double> freq = rope.frequencies(d);
  KVLAB_ASSERT(static_cast<int>(freq.size()) == rd / 2);
  for (int i = 0; i < rd / 2; ++i) {
    const double theta = freq[static_cast<std::size_t>(i)];
    const std::complex<double> step = std::polar(1.0, theta);
    std::complex<double> mean;
    if (std::abs(1.0 - step) < 1e-9) {  // θ ≈ 0: every rotation ≈ the identity
      for (int p = 0; p < count; ++p) mean += std::polar(1.0, (first + p) * theta);
      mean /= count;
    } else {
      mean = std::polar(1.0, first * theta) * (1.0 - std::polar(1.0, count * theta)) / (1.0 - step) /
             static_cast<double>(count);
    }
    const auto [a, b] = rope.pair(i, d);
    r(a, a) = mean.real();
    r(a, b) = -mean.imag();
    r(b, a) = mean.imag();
    r(b, b) = mean.real();
  }
  // YaRN-style scaling multiplies the rotated channels (cos and sin) by a.
  if (rope.attention_scaling != 1.0) r.topLeftCorner(rd, rd) *= rope.attention_scaling;
  return r;
}

namespace {

struct EaSettings {
  int future = 512;
  int sinks = 4;
  bool covariance = true;
  bool vnorm = true;
};

// Per query head h of the group, the pre-RoPE queries at positions ≥ sinks
// give a mean μ_h and covariance Σ_h (1/n normalisation). Averaged over the
// next `future` positions (from the first position not yet fed), RoPE maps them
// to μ̄ = R̄μ, Σ̄ = R̄ΣR̄ᵀ, and for a key k (as held, after RoPE)
//   E[exp(q·k/√d)] = exp(μ̄·k/√d + kᵀΣ̄k/(2d))   (q Gaussian).
// These are normalised over the scored keys (present, position ≥ sinks; a
// softmax of the exponents), averaged over the group's heads and multiplied by
// ‖v‖₂ (vnorm). Sinks are always kept. Statistics grow with every decode query
// (mode=decode), so the estimate tracks the recorded queries. In a layer with a
// sliding window W, the query at position p sees key j only while p < j + W:
// a key's score is scaled by the share of the `future` positions that still
// see it (0 for a key the window has already left).
class ExpectedAttentionScorer : public TokenScorer {
 public:
  ExpectedAttentionScorer(const BlockContext& ctx, EaSettings s)
      : s_(s),
        d_(ctx.head_dim),
        rope_(ctx.rope.value_or(RopeInfo{})),
        scale_(ctx.attention.scale),
        window_(ctx.attention.window),
        sum_(static_cast<std::size_t>(ctx.group_size), Eigen::VectorXd::Zero(ctx.head_dim)),
        second_(static_cast<std::size_t>(ctx.group_size), Eigen::MatrixXd::Zero(ctx.head_dim, ctx.head_dim)) {}

  void observe(const ScoreInput& in) override {
    KVLAB_ASSERT(in.queries.size() == sum_.size());
    for (std::size_t h = 0; h < in.queries.size(); ++h) {
      const ConstMatrixRef& q = in.queries[h];
      const int skip = std::clamp(s_.sinks - in.first, 0, static_cast<int>(q.rows()));
      const int rows = static_cast<int>(q.rows()) - skip;
      if (rows == 0) continue;
      Matrix pre = q.bottomRows(rows);
      if (rope_.style != RopeStyle::None) rope_rotate(pre, rope_, in.first + skip, /*inverse=*/true);
      const Eigen::MatrixXd x = pre.cast<double>();
      sum_[h] += x.colwise().sum().transpose();
      second_[h].noalias() += x.transpose() * x;
      if (h == 0) count_ += rows;
    }
  }

  std::vector<double> prompt_scores(const ScoreInput& in) override { return scores(in); }
  std::vector<double> decode_scores(const ScoreInput& in) override { return scores(in); }

 private:
  std::vector<double> scores(const ScoreInput& in) const {
    const int n = in.tokens();
    std::vector<int> scored;
    for (int j = std::min(s_.sinks, n); j < n; ++j)
      if (in.is_present(j)) scored.push_back(j);
    std::vector<double> out(static_cast<std::size_t>(n), 0.0);
    for (int j = 0; j < std::min(s_.sinks, n); ++j) out[static_cast<std::size_t>(j)] = kAlwaysKeep;
    if (scored.empty()) return out;

    Eigen::MatrixXd k(static_cast<Eigen::Index>(scored.size()), d_);
    for (std::size_t r = 0; r < scored.size(); ++r) k.row(static_cast<Eigen::Index>(r)) = in.keys.row(scored[r]).cast<double>();
    const Eigen::MatrixXd rot = mean_rope_rotation(rope_, d_, n, s_.future);
    // s = the layer's attention scale: E[exp(s·q·k)] = exp(s·μ̄·k + s²·kᵀΣ̄k/2);
    // the default s = 1/√d keeps the exact form it always had.
    const double inv_sqrt_d = scale_ > 0 ? scale_ : 1.0 / std::sqrt(static_cast<double>(d_));
    const double cov_factor = scale_ > 0 ? scale_ * scale_ / 2.0 : 1.0 / (2.0 * d_);
    std::vector<double> acc(scored.size(), 0.0);
    for (std::size_t h = 0; h < sum_.size(); ++h) {
      Eigen::VectorXd mu = Eigen::VectorXd::Zero(d_);
      Eigen::MatrixXd cov = Eigen::MatrixXd::Zero(d_, d_);
      if (count_ > 0) {
        const double n_q = static_cast<double>(count_);
        mu = sum_[h] / n_q;
        cov = second_[h] / n_q - mu * mu.transpose();
      }
      const Eigen::VectorXd mu_bar = rot * mu;
      Eigen::VectorXd z = (k * mu_bar) * inv_sqrt_d;
      if (s_.covariance) {
        const Eigen::MatrixXd cov_bar = rot * cov * rot.transpose();
        z += scale_ > 0 ? Eigen::VectorXd(((k * cov_bar).cwiseProduct(k)).rowwise().sum() * cov_factor)
                        : Eigen::VectorXd(((k * cov_bar).cwiseProduct(k)).rowwise().sum() / (2.0 * d_));
      }
      const double mx = z.maxCoeff();
      double sum = 0;
      for (Eigen::Index r = 0; r < z.size(); ++r) sum += std::exp(z[r] - mx);
      for (Eigen::Index r = 0; r < z.size(); ++r) acc[static_cast<std::size_t>(r)] += std::exp(z[r] - mx) / sum;
    }
    for (std::size_t r = 0; r < scored.size(); ++r) {
      double s = acc[r] / static_cast<double>(sum_.size());
      if (s_.vnorm) s *= in.values.row(scored[r]).cast<double>().norm();
      if (window_ > 0) s *= visible_share(scored[r], n);
      out[static_cast<std::size_t>(scored[r])] = s;
    }
    return out;
  }

  // Of the future positions p ∈ [n, n + future), the share that sees key j
  // (p − W < j); the window is the layer's (0: none).
  double visible_share(int j, int n) const {
    const long long seen = std::clamp<long long>(static_cast<long long>(j) + window_ - n, 0, s_.future);
    return static_cast<double>(seen) / static_cast<double>(s_.future);
  }

  EaSettings s_;
  int d_;
  RopeInfo rope_;
  double scale_;  // the dump's attn_scale; 0 = 1/sqrt(d)
  int window_;    // the layer's sliding window; 0 = none
  std::vector<Eigen::VectorXd> sum_;
  std::vector<Eigen::MatrixXd> second_;
  long long count_ = 0;  // queries per head in the statistics
};

}  // namespace

ScorerKind expected_attention_scorer() {
  return {"expected-attention",
          {{"future", ParamType::Int, "512", "future positions the RoPE rotation of the query statistics is averaged over",
            1, 1 << 20},
           {"sinks", ParamType::Int, "4", "first positions always kept and left out of the query statistics", 0,
            1 << 20},
           {"covariance", ParamType::Bool, "true", "include the query covariance term k^T Sigma k/(2d) in the exponent"},
           {"vnorm", ParamType::Bool, "true", "multiply the expected attention by ||v||_2"}},
          [](const ParamValues& p) -> ScorerFactory {
            EaSettings s;
            s.future = p.get_int("future");
            s.sinks = p.get_int("sinks");
            s.covariance = p.get_bool("covariance");
            s.vnorm = p.get_bool("vnorm");
            return [s](const BlockContext& ctx) { return std::make_unique<ExpectedAttentionScorer>(ctx, s); };
          },
          /*needs_queries=*/true, /*needs_rope=*/true};
}

namespace methods {

MethodInfo expected_attention() {
  return scored_dropper_method(expected_attention_scorer(),
                               "Expected Attention: keep the tokens future queries are expected to attend to (query "
                               "mean/covariance, RoPE averaged over future positions) times ||v||");
}

}  // namespace methods

}  // namespace kvlab
