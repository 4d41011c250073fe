// h2o: Heavy-Hitter Oracle (REFERENCE: H2O), docs/methods/droppers.md.
#include "kvlab/compressors/h2o.hpp"

#include <algorithm>

#include "kvlab/compressors/registry.hpp"
#include "kvlab/core/error.hpp"
#include "kvlab/attention/scores.hpp"

namespace kvlab {

namespace {

// Scores: the attention each cached token received from every query so far,
// summed over the group's query heads, on the keys as the cache holds them.
// Prefill accumulates all prompt queries (causal), then evicts once: keep the
// `recent` newest plus the `heavy` highest-scoring older tokens. Each decode
// step adds the new query's attention over the kept cache (new token included),
// then, while kept > heavy + recent, evicts the lowest-scoring kept token older
// than the recent window. Ties: the lower position wins (is kept).
class H2oState : public TokenDropperState {
 public:
  H2oState(const BlockContext& ctx, const H2oConfig& cfg) : TokenDropperState(ctx, cfg.store), cfg_(cfg) {}

  void prefill(ConstMatrixRef keys, ConstMatrixRef values, const QueryGroup& q) override {
    require_queries(q, "h2o");
    const int p = static_cast<int>(keys.rows());
    heavy_ = budget_count(cfg_.heavy, cfg_.heavy_tokens, p);
    recent_ = std::max(1, budget_count(cfg_.recent, cfg_.recent_tokens, p));
    if (cfg_.pyramid_beta > 0) heavy_ = pyramid_budget(heavy_, ctx_.layer, ctx_.num_layers, cfg_.pyramid_beta);
    store_tokens(keys, values);
    scores_.assign(static_cast<std::size_t>(std::max(ctx_.max_tokens, p)), 0.0);
    accumulate_attention_scores(q, 0, held_keys(), nullptr, scores_, ctx_.attention);
    if (p <= heavy_ + recent_) return;
    for (int i : non_heavy_positions(scores_, p - recent_, heavy_)) drop(i);
  }

  void append(ConstRowRef key, ConstRowRef value, const QueryGroup& q) override {
    require_queries(q, "h2o");
    const int t = size();
    store_token(key, value);
    if (static_cast<int>(scores_.size()) <= t) scores_.resize(static_cast<std::size_t>(2 * t + 2), 0.0);
    accumulate_attention_scores(q, t, held_keys(), present_mask(), scores_, ctx_.attention);
    while (kept() > heavy_ + recent_) {
      int victim = -1;  // lowest score; among equal scores the higher position goes
      for (int i = 0; i <= t - recent_; ++i) {
        if (!is_present(i)) continue;
        if (victim < 0 || scores_[i] <= scores_[victim]) victim = i;
      }
      KVLAB_ASSERT(victim >= 0);
      drop(victim);
    }
  }

  int heavy_budget() const { return heavy_; }
  int recent_budget() const { return recent_; }

 private:
  void drop(int i) {
    evict(i);
    scores_[i] = 0.0;  // gone for good
  }

  H2oConfig cfg_;
  int heavy_ = 0, recent_ = 1;
  std::vector<double> scores_;
};

class H2oCompressor : public Compressor {
 public:
  explicit H2oCompressor(H2oConfig cfg) : cfg_(std::move(cfg)) {}
  std::unique_ptr<CacheState> new_state(const BlockContext& ctx) const override {
    return std::make_unique<H2oState>(ctx, cfg_);
  }
  bool needs_queries() const override { return true; }

 private:
  H2oConfig cfg_;
};

}  // namespace

std::vector<ParamSpec> h2o_params() {
  return {ParamSpec{"heavy", ParamType::Float, "0.1", "heavy-hitter budget as a fraction of the prompt length", 0, 1}
              .only_when(when_zero("heavy_tokens")),
          ParamSpec{"recent", ParamType::Float, "0.1", "recent-window budget as a fraction of the prompt length", 0, 1}
              .only_when(when_zero("recent_tokens")),
          {"heavy_tokens", ParamType::Int, "0", "absolute heavy budget (overrides heavy when > 0)", 0, 1 << 24},
          {"recent_tokens", ParamType::Int, "0", "absolute recent budget (overrides recent when > 0)", 0, 1 << 24}};
}

H2oConfig h2o_config(const ParamValues& p, const Registry& r, const std::string& method) {
  H2oConfig c;
  c.heavy = p.get_float("heavy");
  c.recent = p.get_float("recent");
  c.heavy_tokens = p.get_int("heavy_tokens");
  c.recent_tokens = p.get_int("recent_tokens");
  c.store = token_store_from(p, r, method);
  return c;
}

std::unique_ptr<Compressor> make_h2o(const H2oConfig& cfg) { return std::make_unique<H2oCompressor>(cfg); }

namespace methods {

MethodInfo h2o() {
  std::vector<ParamSpec> params = h2o_params();
  params.push_back(inner_param());
  return {"h2o", "drop",
          "H2O: keep the recent window plus the heavy hitters by accumulated attention (evicts for good)",
          std::move(params),
          [](const ParamValues& p, const Registry& r) -> std::unique_ptr<Compressor> {
            return make_h2o(h2o_config(p, r, "h2o"));
          }};
}

}  // namespace methods

}  // namespace kvlab
