// keydiff: keep the keys least similar to the cache's mean direction (Park et
// al. 2025, "KeyDiff: Key Similarity-Based KV Cache Eviction"),
// docs/methods/eviction.md.
#include <algorithm>
#include <cmath>

#include "kvlab/compressors/scored_dropper.hpp"

namespace kvlab {

namespace {

// Score of key k_i within a set S of cached keys: −cos(k_i, a), with the anchor
// a = mean over S of k_j/‖k_j‖ (a zero key normalises to zero and has cosine 0).
// Prefill with block = 0 scores the whole prompt at once (kvpress's
// KeyDiffPress); block = b > 0 is the paper's block-wise prompt processing: the
// first B tokens fill the cache, then every block of b tokens joins it and the
// cache is cut back to B with the anchor of kept + block. Decode: S = the kept
// cache with the new token.
class KeydiffScorer : public TokenScorer {
 public:
  explicit KeydiffScorer(int block) : block_(block) {}

  std::vector<double> prompt_scores(const ScoreInput& in) override {
    std::vector<int> all(static_cast<std::size_t>(in.tokens()));
    for (int i = 0; i < in.tokens(); ++i) all[static_cast<std::size_t>(i)] = i;
    return scores_within(in.keys, all);
  }

  std::vector<int> prompt_selection(const ScoreInput& in, int budget, int protect_from) override {
    if (block_ == 0) return TokenScorer::prompt_selection(in, budget, protect_from);
    std::vector<int> kept;
    for (int i = 0; i < budget; ++i) kept.push_back(i);
    for (int start = budget; start < in.tokens(); start += block_) {
      std::vector<int> set = kept;
      for (int i = start; i < std::min(start + block_, in.tokens()); ++i) set.push_back(i);
      std::vector<double> s = scores_within(in.keys, set);
      for (int i : set)
        if (i >= protect_from) s[static_cast<std::size_t>(i)] = kAlwaysKeep;
      kept = top_positions(set, s, budget);
    }
    return kept;
  }

  std::vector<double> decode_scores(const ScoreInput& in) override {
    std::vector<int> set;
    for (int i = 0; i < in.tokens(); ++i)
      if (in.is_present(i)) set.push_back(i);
    return scores_within(in.keys, set);
  }

 private:
  // Scores indexed by position (size = keys.rows()); only `set` is filled.
  static std::vector<double> scores_within(ConstMatrixRef keys, const std::vector<int>& set) {
    const auto d = keys.cols();
    std::vector<double> norm(static_cast<std::size_t>(keys.rows()), 0.0), anchor(static_cast<std::size_t>(d), 0.0);
    for (int i : set) {
      double sq = 0;
      for (Eigen::Index c = 0; c < d; ++c) sq += static_cast<double>(keys(i, c)) * keys(i, c);
      norm[static_cast<std::size_t>(i)] = std::sqrt(sq);
      if (sq == 0) continue;
      for (Eigen::Index c = 0; c < d; ++c) anchor[static_cast<std::size_t>(c)] += keys(i, c) / norm[static_cast<std::size_t>(i)];
    }
    double anchor_norm = 0;
    for (double& a : anchor) {
      a /= static_cast<double>(set.size());
      anchor_norm += a * a;
    }
    anchor_norm = std::sqrt(anchor_norm);
    std::vector<double> s(static_cast<std::size_t>(keys.rows()), 0.0);
    for (int i : set) {
      const double n = norm[static_cast<std::size_t>(i)];
      if (n == 0 || anchor_norm == 0) continue;
      double dot = 0;
      for (Eigen::Index c = 0; c < d; ++c) dot += keys(i, c) * anchor[static_cast<std::size_t>(c)];
      s[static_cast<std::size_t>(i)] = -dot / (n * anchor_norm);
    }
    return s;
  }

  int block_;
};

}  // namespace

ScorerKind keydiff_scorer() {
  return {"keydiff",
          {{"block", ParamType::Int, "128",
            "prompt processed in blocks of this many tokens, the cache cut back to B after each (paper); 0: the "
            "whole prompt scored at once (kvpress)",
            0, 1 << 24}},
          [](const ParamValues& p) -> ScorerFactory {
            const int block = p.has("block") ? p.get_int("block") : 0;  // the wrappers use scores only
            return [block](const BlockContext&) { return std::make_unique<KeydiffScorer>(block); };
          },
          /*needs_queries=*/false, /*needs_rope=*/false, /*selection_only=*/{"block"}};
}

namespace methods {

MethodInfo keydiff() {
  return scored_dropper_method(keydiff_scorer(),
                               "KeyDiff: keep the keys least cosine-similar to the mean normalised key");
}

}  // namespace methods

}  // namespace kvlab
