// leverage: keep the keys with the largest statistical leverage, i.e. the
// geometric outliers a low-rank (CUR) reconstruction of the keys needs (Chari &
// Van Durme 2025, "Compactor: Calibrated Query-Agnostic KV Cache Compression
// with Approximate Leverage Scores"), docs/methods/eviction.md.
#include <Eigen/Cholesky>
#include <cmath>

#include "kvlab/compressors/scored_dropper.hpp"
#include "kvlab/core/rng.hpp"
#include "kvlab/quant/rope_transform.hpp"

namespace kvlab {

namespace {

constexpr std::uint64_t kSketchPurpose = 0x4C45564552ULL;  // "LEVER"

// Keys before RoPE (RoPE undone at each token's position when the dump has
// it), centred: x_i − μ with μ and the scatter C = Σ (x − μ)(x − μ)ᵀ over every
// key fed so far (the prompt at prefill; prompt and decode keys in
// mode=decode). With sketch = k > 0 keys are first projected by a Gaussian
// Φ [d × k], entries N(0, 1/k), from Rng::for_block(seed, layer, kv_head,
// "LEVER") (Compactor's right sketch); sketch = 0 is the exact score. Score:
//   ℓ_i = y_iᵀ (C_y + λI)⁻¹ y_i,   y_i = (x_i − μ)Φ,   C_y = ΦᵀCΦ,
// λ = 1e-9 · trace(C_y)/k only guards a singular C_y (a rank-deficient prompt).
class LeverageScorer : public TokenScorer {
 public:
  LeverageScorer(const BlockContext& ctx, int sketch)
      : rope_(ctx.rope.value_or(RopeInfo{})),
        pre_(std::max(ctx.max_tokens, 1), ctx.head_dim),
        sum_(Eigen::VectorXd::Zero(ctx.head_dim)),
        second_(Eigen::MatrixXd::Zero(ctx.head_dim, ctx.head_dim)) {
    if (sketch > 0) {
      Rng rng = Rng::for_block(ctx.seed, ctx.layer, ctx.kv_head, kSketchPurpose);
      sketch_.resize(ctx.head_dim, sketch);
      const double scale = 1.0 / std::sqrt(static_cast<double>(sketch));
      for (int r = 0; r < ctx.head_dim; ++r)
        for (int c = 0; c < sketch; ++c) sketch_(r, c) = scale * rng.normal();
    }
  }

  // Undoes RoPE on the new rows [first, tokens) and adds them to the statistics.
  void observe(const ScoreInput& in) override {
    const int first = in.first, n = in.tokens() - in.first;
    if (pre_.rows() < in.tokens()) pre_.conservativeResize(2 * in.tokens(), Eigen::NoChange);
    pre_.middleRows(first, n) = in.keys.middleRows(first, n);
    if (rope_.style != RopeStyle::None) rope_rotate(pre_.middleRows(first, n), rope_, first, /*inverse=*/true);
    const Eigen::MatrixXd x = pre_.middleRows(first, n).cast<double>();
    sum_ += x.colwise().sum().transpose();
    second_.noalias() += x.transpose() * x;
    count_ += n;
  }

  std::vector<double> prompt_scores(const ScoreInput& in) override { return scores(in); }
  std::vector<double> decode_scores(const ScoreInput& in) override { return scores(in); }

 private:
  std::vector<double> scores(const ScoreInput& in) const {
    const double n = static_cast<double>(count_);
    const Eigen::VectorXd mu = sum_ / n;
    Eigen::MatrixXd c = second_ - n * mu * mu.transpose();
    Eigen::RowVectorXd shift = mu.transpose();
    if (sketch_.size() > 0) {
      c = sketch_.transpose() * c * sketch_;
      shift = shift * sketch_;
    }
    const auto k = c.rows();
    const double ridge = 1e-9 * c.trace() / static_cast<double>(k) + 1e-300;
    const Eigen::LDLT<Eigen::MatrixXd> solver(c + ridge * Eigen::MatrixXd::Identity(k, k));
    std::vector<double> out(static_cast<std::size_t>(in.tokens()), 0.0);
    for (int i = 0; i < in.tokens(); ++i) {
      if (!in.is_present(i)) continue;
      Eigen::RowVectorXd y = pre_.row(i).cast<double>();
      if (sketch_.size() > 0) y = y * sketch_;
      y -= shift;
      out[static_cast<std::size_t>(i)] = y.dot(solver.solve(y.transpose()));
    }
    return out;
  }

  RopeInfo rope_;
  Matrix pre_;  // keys before RoPE, by position
  Eigen::MatrixXd sketch_;
  Eigen::VectorXd sum_;
  Eigen::MatrixXd second_;
  long long count_ = 0;
};

}  // namespace

ScorerKind leverage_scorer() {
  return {"leverage",
          {{"sketch", ParamType::Int, "0",
            "Gaussian right-sketch dimension k of the keys (Compactor/kvpress use 48); 0: exact leverage", 0, 4096}},
          [](const ParamValues& p) -> ScorerFactory {
            const int sketch = p.get_int("sketch");
            return [sketch](const BlockContext& ctx) { return std::make_unique<LeverageScorer>(ctx, sketch); };
          },
          /*needs_queries=*/false, /*needs_rope=*/true};
}

namespace methods {

MethodInfo leverage() {
  return scored_dropper_method(leverage_scorer(),
                               "Leverage (Compactor): keep the pre-RoPE keys with the largest statistical leverage");
}

}  // namespace methods

}  // namespace kvlab
