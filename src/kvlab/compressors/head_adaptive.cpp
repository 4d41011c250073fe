#include "kvlab/compressors/head_adaptive.hpp"

#include <algorithm>
#include <cmath>
#include <set>

#include "kvlab/compressors/head_budget.hpp"
#include "kvlab/core/error.hpp"

namespace kvlab {

namespace {

// One head's kept tokens; the layer state decides what to evict.
class HeadCache : public TokenDropperState {
 public:
  using TokenDropperState::TokenDropperState;
  void prefill(ConstMatrixRef keys, ConstMatrixRef values, const QueryGroup&) override { store_tokens(keys, values); }
  void append(ConstRowRef key, ConstRowRef value, const QueryGroup&) override { store_token(key, value); }
  using TokenDropperState::evict;
  using TokenDropperState::present_mask;
};

// Prefill: every head's base scores over the prompt (mode=decode: the newest R
// positions +inf), then adakv_select over the layer (adaptive) or the top B of
// every head, or criticalkv_select within those per-head budgets (critical).
// mode=decode: after every token, while the layer holds more than H·B (or a
// head more than B when not adaptive), the lowest decode score older than each
// head's newest R is evicted — across heads from heads above the safeguard
// when adaptive; the score is (s + ε)·‖v‖₁ when critical.
class HeadAdaptiveState : public LayerCacheState {
 public:
  HeadAdaptiveState(const HeadAdaptiveConfig& cfg, const BlockContext& ctx) : cfg_(cfg) {
    for (int h = 0; h < ctx.num_kv_heads; ++h) {
      BlockContext c = ctx;
      c.kv_head = h;
      heads_.push_back(std::make_unique<HeadCache>(c, cfg.store));
      scorers_.push_back(cfg.make_scorer(c));
    }
  }

  int heads() const override { return static_cast<int>(heads_.size()); }
  const CacheReader& head(int h) const override { return *heads_[static_cast<std::size_t>(h)]; }

  void prefill(std::span<const ConstMatrixRef> keys, std::span<const ConstMatrixRef> values,
               std::span<const QueryGroup> queries) override {
    const int p = static_cast<int>(keys[0].rows());
    budget_ = cfg_.budget.tokens(p);
    recent_ = cfg_.budget.mode == EvictionMode::Decode ? cfg_.budget.recent_tokens(budget_) : 0;
    HeadScores scores(heads_.size()), norms(heads_.size());
    for (std::size_t h = 0; h < heads_.size(); ++h) {
      if (cfg_.base.needs_queries) require_queries(queries[h], cfg_.method.c_str());
      heads_[h]->prefill(keys[h], values[h], queries[h]);
      const ScoreInput in = input(h, queries[h], 0);
      scorers_[h]->observe(in);
      if (p <= budget_) continue;
      scores[h] = scorers_[h]->prompt_scores(in);
      for (int i = p - recent_; i < p; ++i) scores[h][static_cast<std::size_t>(i)] = kAlwaysKeep;
      if (cfg_.critical) norms[h] = value_l1(h, p);
    }
    if (p <= budget_) return;
    std::vector<std::vector<int>> kept;
    const int floor = safeguard();
    if (cfg_.adaptive) kept = adakv_select(scores, budget_, cfg_.alpha);
    if (cfg_.critical) {
      std::vector<int> budgets(heads_.size(), budget_);
      if (cfg_.adaptive)
        for (std::size_t h = 0; h < heads_.size(); ++h) budgets[h] = static_cast<int>(kept[h].size());
      kept = criticalkv_select(scores, norms, budgets, std::vector<int>(heads_.size(), floor), cfg_.first_stage,
                               cfg_.epsilon);
    } else if (!cfg_.adaptive) {
      for (std::size_t h = 0; h < heads_.size(); ++h) {
        std::vector<int> all(static_cast<std::size_t>(p));
        for (int i = 0; i < p; ++i) all[static_cast<std::size_t>(i)] = i;
        kept.push_back(top_positions(all, scores[h], budget_));
      }
    }
    for (std::size_t h = 0; h < heads_.size(); ++h) {
      std::vector<char> keep(static_cast<std::size_t>(p), 0);
      for (int i : kept[h]) keep[static_cast<std::size_t>(i)] = 1;
      for (int i = 0; i < p; ++i)
        if (!keep[static_cast<std::size_t>(i)]) heads_[h]->evict(i);
    }
  }

  void append(std::span<const ConstRowRef> keys, std::span<const ConstRowRef> values,
              std::span<const QueryGroup> queries) override {
    const int t = heads_[0]->size();
    for (std::size_t h = 0; h < heads_.size(); ++h) heads_[h]->append(keys[h], values[h], queries[h]);
    if (cfg_.budget.mode != EvictionMode::Decode) return;
    for (std::size_t h = 0; h < heads_.size(); ++h) {
      if (cfg_.base.needs_queries) require_queries(queries[h], cfg_.method.c_str());
      scorers_[h]->observe(input(h, queries[h], t));
    }
    std::vector<int> kept(heads_.size());
    int total = 0;
    for (std::size_t h = 0; h < heads_.size(); ++h) total += kept[h] = heads_[h]->kept();
    const int cap = budget_ * heads();
    const bool over = cfg_.adaptive ? total > cap : std::any_of(kept.begin(), kept.end(), [&](int k) { return k > budget_; });
    if (!over) return;
    HeadScores scores(heads_.size());
    std::vector<const std::uint8_t*> present(heads_.size());
    for (std::size_t h = 0; h < heads_.size(); ++h) {
      scores[h] = scorers_[h]->decode_scores(input(h, queries[h], t));
      if (cfg_.critical) {
        const std::vector<double> n = value_l1(h, t + 1);
        for (std::size_t i = 0; i < scores[h].size(); ++i) scores[h][i] = critical_score(scores[h][i], n[i], cfg_.epsilon);
      }
      present[h] = heads_[h]->present_mask();
    }
    const std::vector<int> end(heads_.size(), t + 1 - std::max(recent_, 1));
    if (cfg_.adaptive) {
      while (total > cap) {
        const HeadPosition v = lowest_across_heads(scores, present, end, kept, safeguard());
        if (v.head < 0) break;
        heads_[static_cast<std::size_t>(v.head)]->evict(v.position);
        present[static_cast<std::size_t>(v.head)] = heads_[static_cast<std::size_t>(v.head)]->present_mask();
        --kept[static_cast<std::size_t>(v.head)];
        --total;
      }
      return;
    }
    for (std::size_t h = 0; h < heads_.size(); ++h)
      while (heads_[h]->kept() > budget_) {
        const int victim = lowest_present(scores[h], heads_[h]->present_mask(), end[h]);
        if (victim < 0) break;
        heads_[h]->evict(victim);
      }
  }

 private:
  ScoreInput input(std::size_t h, const QueryGroup& q, int first) const {
    const CacheView v = heads_[h]->view();
    return ScoreInput{v.keys, v.values, heads_[h]->present_mask(), q, first};
  }
  int safeguard() const { return cfg_.adaptive ? std::min(budget_count(cfg_.alpha, 0, budget_), budget_) : 0; }
  // ‖v_i‖₁ of head h's values as held, positions [0, n).
  std::vector<double> value_l1(std::size_t h, int n) const {
    const CacheView v = heads_[h]->view();
    std::vector<double> out(static_cast<std::size_t>(n), 0.0);
    for (int i = 0; i < n; ++i) out[static_cast<std::size_t>(i)] = v.values.row(i).cast<double>().cwiseAbs().sum();
    return out;
  }

  HeadAdaptiveConfig cfg_;
  std::vector<std::unique_ptr<HeadCache>> heads_;
  std::vector<std::unique_ptr<TokenScorer>> scorers_;
  int budget_ = 0, recent_ = 0;
};

class HeadAdaptiveCompressor : public Compressor {
 public:
  explicit HeadAdaptiveCompressor(HeadAdaptiveConfig cfg) : cfg_(std::move(cfg)) {}
  Scope scope() const override { return Scope::Layer; }
  std::unique_ptr<LayerCacheState> new_layer_state(const BlockContext& ctx) const override {
    return std::make_unique<HeadAdaptiveState>(cfg_, ctx);
  }
  bool needs_queries() const override { return cfg_.base.needs_queries; }
  bool needs_rope() const override { return cfg_.base.needs_rope; }

 private:
  HeadAdaptiveConfig cfg_;
};

}  // namespace

std::unique_ptr<Compressor> make_head_adaptive(HeadAdaptiveConfig cfg) {
  return std::make_unique<HeadAdaptiveCompressor>(std::move(cfg));
}

std::vector<ScorerKind> head_adaptive_bases() {
  return {snapkv_scorer(),     tova_scorer(),     knorm_scorer(), keydiff_scorer(), expected_attention_scorer(),
          leverage_scorer(),   random_scorer()};
}

std::vector<ParamSpec> head_adaptive_base_params() {
  const std::vector<ScorerKind> bases = head_adaptive_bases();
  std::vector<std::string> names;
  for (const auto& b : bases) names.push_back(b.name);
  std::vector<ParamSpec> params{
      {"base", ParamType::Choice, "snapkv", "the per-head scores the layer's budget is allocated by", 0, 0, names}};
  std::set<std::string> seen{"base"};
  for (const ScorerKind& b : bases)
    for (ParamSpec p : b.params) {
      if (std::find(b.selection_only.begin(), b.selection_only.end(), p.name) != b.selection_only.end()) continue;
      KVLAB_ASSERT(seen.insert(p.name).second);  // base parameter names never collide
      ParamCondition c = when_equals("base", {b.name});
      if (!p.applies.always()) c = all_of({c, p.applies});
      params.push_back(std::move(p).only_when(std::move(c)));
    }
  return params;
}

const ScorerKind& chosen_base(const std::vector<ScorerKind>& bases, const ParamValues& p) {
  const std::string& name = p.get_choice("base");
  for (const ScorerKind& b : bases)
    if (b.name == name) return b;
  fail("unknown base '{}'", name);
}

}  // namespace kvlab
