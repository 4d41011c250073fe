// tova: Token Omission Via Attention (Oren et al. 2024, "Transformers are
// Multi-State RNNs"), docs/methods/eviction.md.
#include "kvlab/compressors/scored_dropper.hpp"
#include "kvlab/attention/scores.hpp"

namespace kvlab {

namespace {

// Scores: the attention of the current query only (no accumulation, unlike
// H2O), summed over the GQA group's query heads (the mean ranks the same).
// Prefill: the last prompt query over the prompt, the last prompt token always
// kept. Decode: the new token's query over the kept cache.
class TovaScorer : public TokenScorer {
 public:
  explicit TovaScorer(const AttentionRule& rule) : rule_(rule) {}

  std::vector<double> prompt_scores(const ScoreInput& in) override {
    const int p = in.tokens();
    std::vector<double> s = last_query_attention(in, p - 1);
    s[static_cast<std::size_t>(p - 1)] = kAlwaysKeep;
    return s;
  }
  std::vector<double> decode_scores(const ScoreInput& in) override { return last_query_attention(in, in.first); }

 private:
  // Attention of the query at `position` (row position − in.first of each head).
  std::vector<double> last_query_attention(const ScoreInput& in, int position) const {
    QueryGroup row;
    for (const ConstMatrixRef& h : in.queries) row.emplace_back(h.middleRows(position - in.first, 1));
    return attention_scores(row, position, in.keys.topRows(position + 1), in.present, rule_);
  }

  AttentionRule rule_;  // the layer's scale, soft-cap and window
};

}  // namespace

ScorerKind tova_scorer() {
  return {"tova", {}, [](const ParamValues&) -> ScorerFactory {
            return [](const BlockContext& ctx) { return std::make_unique<TovaScorer>(ctx.attention); };
          },
          /*needs_queries=*/true, /*needs_rope=*/false};
}

namespace methods {

MethodInfo tova() {
  return scored_dropper_method(tova_scorer(),
                               "TOVA: keep the tokens the current query attends to most (group-summed attention)");
}

}  // namespace methods

}  // namespace kvlab
