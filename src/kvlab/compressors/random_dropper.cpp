// random: uniformly random eviction, the baseline every table needs (kvpress's
// RandomPress), docs/methods/eviction.md.
#include "kvlab/compressors/scored_dropper.hpp"
#include "kvlab/core/rng.hpp"

namespace kvlab {

namespace {

// Every score is a fresh U[0, 1) draw from the block's stream
// Rng::for_block(seed, layer, kv_head, "RANDOM"), one per position in position
// order: the top B of i.i.d. draws is a uniformly random B-subset, and the
// lowest of fresh draws a uniformly random victim.
class RandomScorer : public TokenScorer {
 public:
  explicit RandomScorer(const BlockContext& ctx) : rng_(Rng::for_block(ctx.seed, ctx.layer, ctx.kv_head, kRandomDropperPurpose)) {}

  std::vector<double> prompt_scores(const ScoreInput& in) override { return draws(in); }
  std::vector<double> decode_scores(const ScoreInput& in) override { return draws(in); }

 private:
  std::vector<double> draws(const ScoreInput& in) {
    std::vector<double> s(static_cast<std::size_t>(in.tokens()), 0.0);
    for (int i = 0; i < in.tokens(); ++i)
      if (in.is_present(i)) s[static_cast<std::size_t>(i)] = rng_.uniform();
    return s;
  }

  Rng rng_;
};

}  // namespace

ScorerKind random_scorer() {
  return {"random", {}, [](const ParamValues&) -> ScorerFactory {
            return [](const BlockContext& ctx) { return std::make_unique<RandomScorer>(ctx); };
          },
          /*needs_queries=*/false, /*needs_rope=*/false};
}

namespace methods {

MethodInfo random() {
  return scored_dropper_method(random_scorer(),
                               "Random: keep a uniformly random B tokens (seeded per block); the baseline");
}

}  // namespace methods

}  // namespace kvlab
