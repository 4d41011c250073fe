// SnapKV's votes as a TokenScorer: the base adakv and criticalkv allocate a
// layer's budget with by default (Ada-SnapKV, CriticalAdaKV),
// docs/methods/eviction.md.
#include <algorithm>

#include "kvlab/compressors/h2o.hpp"
#include "kvlab/compressors/scored_dropper.hpp"
#include "kvlab/core/error.hpp"
#include "kvlab/attention/scores.hpp"

namespace kvlab {

namespace {

// Prefill: the last w' = min(w, P) prompt queries attend causally to the
// prompt; the votes of the prefix [0, P − w') (summed over the window and the
// group's heads) are pooled (snapkv_pool) and the window scores kAlwaysKeep —
// SnapKV's selection with the window counted in the budget (kvpress's
// SnapKVPress). Decode: the same over the kept cache with the newest w'
// queries as the window (evicted positions vote 0 before pooling).
class SnapkvScorer : public TokenScorer {
 public:
  SnapkvScorer(const BlockContext& ctx, int window, int kernel, bool max_pool)
      : window_(window), kernel_(kernel), max_pool_(max_pool), rows_(std::max(ctx.max_tokens, 1)),
        rule_(ctx.attention) {}

  void observe(const ScoreInput& in) override {
    if (queries_.empty())
      for (const ConstMatrixRef& h : in.queries) queries_.emplace_back(rows_, h.cols());
    for (std::size_t h = 0; h < queries_.size(); ++h) {
      const ConstMatrixRef& q = in.queries[h];
      if (queries_[h].rows() < in.first + q.rows()) queries_[h].conservativeResize(2 * (in.first + q.rows()), Eigen::NoChange);
      queries_[h].middleRows(in.first, q.rows()) = q;
    }
  }
  std::vector<double> prompt_scores(const ScoreInput& in) override { return scores(in); }
  std::vector<double> decode_scores(const ScoreInput& in) override { return scores(in); }

 private:
  std::vector<double> scores(const ScoreInput& in) const {
    const int n = in.tokens(), w = std::min(window_, n), prefix = n - w;
    QueryGroup window;
    for (const Matrix& h : queries_) window.emplace_back(h.middleRows(prefix, w));
    std::vector<double> votes = attention_scores(window, prefix, in.keys, in.present, rule_);
    votes.resize(static_cast<std::size_t>(prefix));
    std::vector<double> s = snapkv_pool(votes, kernel_, max_pool_);
    s.resize(static_cast<std::size_t>(n), kAlwaysKeep);
    return s;
  }

  int window_, kernel_;
  bool max_pool_;
  int rows_;
  AttentionRule rule_;           // the layer's scale, soft-cap and window
  std::vector<Matrix> queries_;  // the group's queries by position
};

}  // namespace

ScorerKind snapkv_scorer() {
  return {"snapkv",
          {{"window", ParamType::Int, "32", "w: SnapKV's observation window (newest queries; always kept)", 1, 1 << 20},
           {"kernel", ParamType::Int, "7", "SnapKV's pooling kernel along tokens (odd)", 1, 1025},
           ParamSpec{"pool", ParamType::Choice, "max", "SnapKV's pooling of the votes", 0, 0, {"max", "avg"}}.only_when(
               {[](const ParamValues& v) { return v.get_int("kernel") > 1; }, "kernel>1"})},
          [](const ParamValues& p) -> ScorerFactory {
            const int window = p.get_int("window"), kernel = p.get_int("kernel");
            const bool max_pool = p.get_choice("pool") == "max";
            if (kernel % 2 == 0) fail("snapkv base: kernel ({}) must be odd (the pooling is centred)", kernel);
            return [=](const BlockContext& ctx) { return std::make_unique<SnapkvScorer>(ctx, window, kernel, max_pool); };
          },
          /*needs_queries=*/true, /*needs_rope=*/false};
}

}  // namespace kvlab
