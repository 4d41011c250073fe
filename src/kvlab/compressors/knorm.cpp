// knorm: keep the keys with the lowest L2 norm (Devoto et al. 2024, "A Simple
// and Effective L2 Norm-Based Strategy for KV Cache Compression"),
// docs/methods/eviction.md.
#include <cmath>

#include "kvlab/compressors/scored_dropper.hpp"

namespace kvlab {

namespace {

// Score −‖k‖₂ of the key as held (RoPE is a rotation, so the norm is the same
// before and after it). Decode: the kept key with the largest norm goes.
class KnormScorer : public TokenScorer {
 public:
  std::vector<double> prompt_scores(const ScoreInput& in) override { return scores(in); }
  std::vector<double> decode_scores(const ScoreInput& in) override { return scores(in); }

 private:
  static std::vector<double> scores(const ScoreInput& in) {
    std::vector<double> s(static_cast<std::size_t>(in.tokens()), 0.0);
    for (int i = 0; i < in.tokens(); ++i) {
      if (!in.is_present(i)) continue;
      double sq = 0;
      for (int c = 0; c < in.keys.cols(); ++c) sq += static_cast<double>(in.keys(i, c)) * in.keys(i, c);
      s[static_cast<std::size_t>(i)] = -std::sqrt(sq);
    }
    return s;
  }
};

}  // namespace

ScorerKind knorm_scorer() {
  return {"knorm", {}, [](const ParamValues&) -> ScorerFactory {
            return [](const BlockContext&) { return std::make_unique<KnormScorer>(); };
          },
          /*needs_queries=*/false, /*needs_rope=*/false};
}

namespace methods {

MethodInfo knorm() {
  return scored_dropper_method(knorm_scorer(), "K-norm: keep the tokens whose keys have the lowest L2 norm");
}

}  // namespace methods

}  // namespace kvlab
