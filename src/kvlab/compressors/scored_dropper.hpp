#pragma once
// Shared machinery of the score-based token droppers (tova, knorm, keydiff,
// expected-attention, leverage, random; docs/methods/eviction.md): a budget, a
// mode, and a per-block TokenScorer that says which tokens matter. The scorers
// are also the bases the head-adaptive wrappers (adakv, criticalkv) allocate a
// layer's budget with.
//
// Budget: B = keep_tokens if > 0, else max(1, ⌊keep·P⌋) with P the prompt
// length (budget_count's 1e-9 guard).
// mode=prefill (kvpress's setting): at prefill the B highest-scoring prompt
//   positions are kept (ties: the lower position), decode tokens are all kept.
// mode=decode: the newest R = max(1, ⌊recent·B⌋) positions are never evicted
//   (H2O's recent window; recent = 0 protects only the newest token): the
//   prefill keeps them plus the B − R best of the older prompt positions, and
//   after every appended token, while kept > B, the kept position older than
//   the newest R with the lowest decode score is evicted (ties: the higher
//   position goes), so kept = min(B, t) at every step once the prompt is cut.
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "kvlab/compressors/params.hpp"
#include "kvlab/compressors/registry.hpp"
#include "kvlab/compressors/token_dropper.hpp"

namespace kvlab {

enum class EvictionMode { Prefill, Decode };

struct EvictionBudget {
  double keep = 0.5;    // fraction of the prompt kept
  int keep_tokens = 0;  // absolute, overrides keep when > 0
  EvictionMode mode = EvictionMode::Prefill;
  double recent = 0;  // mode=decode: fraction of B kept as the newest window

  int tokens(int prompt_len) const;          // B
  int recent_tokens(int budget) const;       // R
};

// `keep`, `keep_tokens`, `mode`: the budget parameters of every new dropper.
std::vector<ParamSpec> eviction_budget_params(const char* default_keep = "0.5");
// `recent` (only with mode=decode): the protected newest window of the scored droppers.
ParamSpec eviction_recent_param();
// Reads keep, keep_tokens, mode and (if declared) recent.
EvictionBudget eviction_budget_from(const ParamValues& p);

// The purpose tag of random's stream: Rng::for_block(seed, layer, kv_head, this).
inline constexpr std::uint64_t kRandomDropperPurpose = 0x52414E444F4DULL;  // "RANDOM"

// A score that always wins: positions a method never evicts (sinks, windows).
inline constexpr double kAlwaysKeep = std::numeric_limits<double>::infinity();

// What a scorer reads of one block. Prefill: rows [0, P) of the cache as held
// and the group's prompt queries (first = 0). Decode: rows [0, t] (the new token
// at t = first), evicted rows zero and absent in `present`, and the group's
// queries of the new token.
struct ScoreInput {
  ConstMatrixRef keys;
  ConstMatrixRef values;
  const std::uint8_t* present;  // null: every row present
  const QueryGroup& queries;
  int first;  // position of the first query row / new token

  int tokens() const { return static_cast<int>(keys.rows()); }
  bool is_present(int i) const { return present == nullptr || present[i] != 0; }
};

// Scores one block's tokens (higher = more worth keeping; kAlwaysKeep = never
// evicted). One per block: it may keep running statistics.
class TokenScorer {
 public:
  virtual ~TokenScorer() = default;
  // Sees every token fed: the prompt at prefill, then (mode=decode only) each
  // new token. Default: nothing.
  virtual void observe(const ScoreInput& /*in*/) {}
  // Scores of the prompt positions [0, P).
  virtual std::vector<double> prompt_scores(const ScoreInput& in) = 0;
  // The positions kept at prefill under budget B < P (sorted), positions ≥
  // `protect_from` always among them. Default: the B highest prompt_scores
  // (ties: the lower position).
  virtual std::vector<int> prompt_selection(const ScoreInput& in, int budget, int protect_from);
  // Scores of positions [0, t] for decode-time eviction; only present
  // positions < t are read.
  virtual std::vector<double> decode_scores(const ScoreInput& in) = 0;
};

using ScorerFactory = std::function<std::unique_ptr<TokenScorer>(const BlockContext&)>;

// A scoring rule as a method's building block: its own parameters and a
// factory from their values. adakv/criticalkv list these as their bases.
struct ScorerKind {
  std::string name;  // the method name (tova, knorm, ...)
  std::vector<ParamSpec> params;
  std::function<ScorerFactory(const ParamValues&)> make;
  bool needs_queries = false;
  bool needs_rope = false;
  // Parameters that only change prompt_selection, not the scores (the
  // head-adaptive wrappers, which use the scores, leave them out).
  std::vector<std::string> selection_only = {};
};

// The ScorerKinds of the score-based droppers, one per method file.
ScorerKind tova_scorer();
ScorerKind knorm_scorer();
ScorerKind keydiff_scorer();
ScorerKind expected_attention_scorer();
ScorerKind leverage_scorer();
ScorerKind random_scorer();
ScorerKind snapkv_scorer();

// The position to evict: among present positions < end, the lowest score;
// among equal scores the higher position. -1 if there is none.
int lowest_present(const std::vector<double>& scores, const std::uint8_t* present, int end);

class ScoredDropperState : public TokenDropperState {
 public:
  ScoredDropperState(const BlockContext& ctx, TokenStore store, EvictionBudget budget,
                     std::unique_ptr<TokenScorer> scorer, std::string method, bool needs_queries);

  void prefill(ConstMatrixRef keys, ConstMatrixRef values, const QueryGroup& q) override;
  void append(ConstRowRef key, ConstRowRef value, const QueryGroup& q) override;

  int budget() const { return budget_; }

 private:
  ScoreInput input(const QueryGroup& q, int first) const;

  EvictionBudget policy_;
  std::unique_ptr<TokenScorer> scorer_;
  std::string method_;
  bool needs_queries_;
  int budget_ = 0;
};

// The MethodInfo of a plain scored dropper: the scorer's parameters, the
// budget parameters and `inner`.
MethodInfo scored_dropper_method(const ScorerKind& kind, std::string summary);

}  // namespace kvlab
