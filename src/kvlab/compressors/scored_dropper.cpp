#include "kvlab/compressors/scored_dropper.hpp"

#include <algorithm>
#include <numeric>

#include "kvlab/core/error.hpp"

namespace kvlab {

int EvictionBudget::tokens(int prompt_len) const {
  if (keep_tokens > 0) return keep_tokens;
  return std::max(1, budget_count(keep, 0, prompt_len));
}

int EvictionBudget::recent_tokens(int budget) const { return std::max(1, budget_count(recent, 0, budget)); }

std::vector<ParamSpec> eviction_budget_params(const char* default_keep) {
  return {ParamSpec{"keep", ParamType::Float, default_keep,
                    "budget B as a fraction of the prompt length: B = max(1, floor(keep*P))", 0, 1}
              .only_when(when_zero("keep_tokens")),
          {"keep_tokens", ParamType::Int, "0", "absolute budget B (overrides keep when > 0)", 0, 1 << 24},
          {"mode", ParamType::Choice, "prefill",
           "prefill: cut the prompt to B once, keep every decode token (kvpress); decode: also keep B while decoding",
           0, 0, {"prefill", "decode"}}};
}

ParamSpec eviction_recent_param() {
  return ParamSpec{"recent", ParamType::Float, "0",
                   "mode=decode: the newest max(1, floor(recent*B)) tokens are never evicted (0: only the newest)", 0, 1}
      .only_when(when_equals("mode", {"decode"}));
}

EvictionBudget eviction_budget_from(const ParamValues& p) {
  EvictionBudget b;
  b.keep = p.get_float("keep");
  b.keep_tokens = p.get_int("keep_tokens");
  b.mode = p.get_choice("mode") == "decode" ? EvictionMode::Decode : EvictionMode::Prefill;
  if (p.has("recent")) b.recent = p.get_float("recent");
  return b;
}

std::vector<int> TokenScorer::prompt_selection(const ScoreInput& in, int budget, int protect_from) {
  std::vector<double> scores = prompt_scores(in);
  for (std::size_t i = static_cast<std::size_t>(protect_from); i < scores.size(); ++i) scores[i] = kAlwaysKeep;
  std::vector<int> all(scores.size());
  std::iota(all.begin(), all.end(), 0);
  return top_positions(all, scores, budget);
}

int lowest_present(const std::vector<double>& scores, const std::uint8_t* present, int end) {
  int victim = -1;
  for (int i = 0; i < end; ++i) {
    if (present != nullptr && present[i] == 0) continue;
    if (victim < 0 || scores[static_cast<std::size_t>(i)] <= scores[static_cast<std::size_t>(victim)]) victim = i;
  }
  return victim;
}

ScoredDropperState::ScoredDropperState(const BlockContext& ctx, TokenStore store, EvictionBudget budget,
                                       std::unique_ptr<TokenScorer> scorer, std::string method, bool needs_queries)
    : TokenDropperState(ctx, store),
      policy_(budget),
      scorer_(std::move(scorer)),
      method_(std::move(method)),
      needs_queries_(needs_queries) {}

ScoreInput ScoredDropperState::input(const QueryGroup& q, int first) const {
  const CacheView v = view();
  return ScoreInput{v.keys, v.values, present_mask(), q, first};
}

void ScoredDropperState::prefill(ConstMatrixRef keys, ConstMatrixRef values, const QueryGroup& q) {
  if (needs_queries_) require_queries(q, method_.c_str());
  const int p = static_cast<int>(keys.rows());
  budget_ = policy_.tokens(p);
  store_tokens(keys, values);
  const ScoreInput in = input(q, 0);
  scorer_->observe(in);
  if (p <= budget_) return;
  const int protect_from = policy_.mode == EvictionMode::Decode ? p - policy_.recent_tokens(budget_) : p;
  const std::vector<int> kept = scorer_->prompt_selection(in, budget_, protect_from);
  KVLAB_ASSERT(static_cast<int>(kept.size()) == budget_);
  std::vector<char> keep(static_cast<std::size_t>(p), 0);
  for (int i : kept) keep[static_cast<std::size_t>(i)] = 1;
  for (int i = 0; i < p; ++i)
    if (!keep[static_cast<std::size_t>(i)]) evict(i);
}

void ScoredDropperState::append(ConstRowRef key, ConstRowRef value, const QueryGroup& q) {
  const int t = size();
  store_token(key, value);
  if (policy_.mode != EvictionMode::Decode) return;
  if (needs_queries_) require_queries(q, method_.c_str());
  const ScoreInput in = input(q, t);
  scorer_->observe(in);
  if (kept() <= budget_) return;
  const std::vector<double> scores = scorer_->decode_scores(in);
  KVLAB_ASSERT(static_cast<int>(scores.size()) == t + 1);
  const int victim = lowest_present(scores, present_mask(), t + 1 - policy_.recent_tokens(budget_));
  KVLAB_ASSERT(victim >= 0);
  evict(victim);
}

namespace {

class ScoredDropperCompressor : public Compressor {
 public:
  ScoredDropperCompressor(std::string method, ScorerFactory factory, EvictionBudget budget, TokenStore store,
                          bool needs_queries, bool needs_rope)
      : method_(std::move(method)),
        factory_(std::move(factory)),
        budget_(budget),
        store_(store),
        needs_queries_(needs_queries),
        needs_rope_(needs_rope) {}

  std::unique_ptr<CacheState> new_state(const BlockContext& ctx) const override {
    return std::make_unique<ScoredDropperState>(ctx, store_, budget_, factory_(ctx), method_, needs_queries_);
  }
  bool needs_queries() const override { return needs_queries_; }
  bool needs_rope() const override { return needs_rope_; }

 private:
  std::string method_;
  ScorerFactory factory_;
  EvictionBudget budget_;
  TokenStore store_;
  bool needs_queries_, needs_rope_;
};

}  // namespace

MethodInfo scored_dropper_method(const ScorerKind& kind, std::string summary) {
  std::vector<ParamSpec> params = eviction_budget_params();
  params.push_back(eviction_recent_param());
  for (const ParamSpec& p : kind.params) params.push_back(p);
  params.push_back(inner_param());
  return {kind.name, "drop", std::move(summary), std::move(params),
          [kind](const ParamValues& p, const Registry& r) -> std::unique_ptr<Compressor> {
            return std::make_unique<ScoredDropperCompressor>(kind.name, kind.make(p), eviction_budget_from(p),
                                                             token_store_from(p, r, kind.name), kind.needs_queries,
                                                             kind.needs_rope);
          }};
}

}  // namespace kvlab
