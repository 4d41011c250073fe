// chunkkv: keep whole chunks of consecutive tokens, ranked by the observation
// window's attention (Liu et al. 2025, "ChunkKV: Semantic-Preserving KV Cache
// Compression for Efficient Long-Context LLM Inference"),
// docs/methods/eviction.md.
#include <algorithm>
#include <numeric>

#include "kvlab/compressors/registry.hpp"
#include "kvlab/compressors/scored_dropper.hpp"
#include "kvlab/attention/scores.hpp"

namespace kvlab {

namespace {

struct ChunkkvConfig {
  EvictionBudget budget;
  int chunk = 10;
  int window = 32;
  TokenStore store;
};

// Chunks are the grid [k·c, (k+1)·c) over all positions. The observation
// window is the newest w' = min(w, B) positions; its queries attend causally
// to the cache as held (SnapKV's votes, summed over the group's heads), and a
// chunk's score is the mean vote of its members older than the window.
// Prefill: the window is kept, and of the prefix [0, P − w') the top
// ⌊(B − w')/c⌋ chunks (ties: the lower chunk; the prefix's last chunk may be
// shorter) — kept ≤ B. mode=decode: after a token is appended, while kept > B,
// the lowest-scoring chunk (ties: the higher chunk goes) loses its members
// older than the window, so kept ≤ B at every step.
class ChunkkvState : public TokenDropperState {
 public:
  ChunkkvState(const BlockContext& ctx, const ChunkkvConfig& cfg) : TokenDropperState(ctx, cfg.store), cfg_(cfg) {}

  void prefill(ConstMatrixRef keys, ConstMatrixRef values, const QueryGroup& q) override {
    require_queries(q, "chunkkv");
    const int p = static_cast<int>(keys.rows());
    budget_ = cfg_.budget.tokens(p);
    store_tokens(keys, values);
    const int rows = std::max(ctx_.max_tokens, p);
    for (const ConstMatrixRef& h : q) {
      queries_.emplace_back(rows, h.cols());
      queries_.back().topRows(p) = h;
    }
    if (p <= budget_) return;
    const int w = std::min({cfg_.window, budget_, p}), prefix = p - w;
    const std::vector<double> votes = window_votes(p, w);
    const int chunks = (prefix + cfg_.chunk - 1) / cfg_.chunk;
    std::vector<double> score(static_cast<std::size_t>(chunks));
    std::vector<int> ids(static_cast<std::size_t>(chunks));
    for (int k = 0; k < chunks; ++k) {
      ids[static_cast<std::size_t>(k)] = k;
      score[static_cast<std::size_t>(k)] = mean_vote(votes, k, prefix);
    }
    std::vector<char> keep(static_cast<std::size_t>(chunks), 0);
    for (int k : top_positions(ids, score, (budget_ - w) / cfg_.chunk)) keep[static_cast<std::size_t>(k)] = 1;
    for (int i = 0; i < prefix; ++i)
      if (!keep[static_cast<std::size_t>(i / cfg_.chunk)]) evict(i);
  }

  void append(ConstRowRef key, ConstRowRef value, const QueryGroup& q) override {
    const int t = size();
    store_token(key, value);
    if (cfg_.budget.mode != EvictionMode::Decode) return;
    require_queries(q, "chunkkv");
    for (std::size_t h = 0; h < queries_.size(); ++h) queries_[h].row(t) = q[h];
    if (kept() <= budget_) return;
    const int n = t + 1, w = std::min({cfg_.window, budget_, n}), first = n - w;
    const std::vector<double> votes = window_votes(n, w);
    int victim = -1;
    double lowest = 0;
    for (int k = 0; k * cfg_.chunk < first; ++k) {
      if (!has_member(k, first)) continue;
      const double s = mean_vote(votes, k, first);
      if (victim < 0 || s <= lowest) victim = k, lowest = s;
    }
    if (victim < 0) return;
    for (int i = victim * cfg_.chunk; i < std::min((victim + 1) * cfg_.chunk, first); ++i)
      if (is_present(i)) evict(i);
  }

 private:
  // Votes of the window's queries (positions [n − w, n)) over rows [0, n).
  std::vector<double> window_votes(int n, int w) const {
    QueryGroup window;
    for (const Matrix& h : queries_) window.emplace_back(h.middleRows(n - w, w));
    return attention_scores(window, n - w, held_keys().topRows(n), present_mask(), ctx_.attention);
  }
  bool has_member(int k, int end) const {
    for (int i = k * cfg_.chunk; i < std::min((k + 1) * cfg_.chunk, end); ++i)
      if (is_present(i)) return true;
    return false;
  }
  // Mean vote of chunk k's present members below `end`.
  double mean_vote(const std::vector<double>& votes, int k, int end) const {
    double sum = 0;
    int members = 0;
    for (int i = k * cfg_.chunk; i < std::min((k + 1) * cfg_.chunk, end); ++i)
      if (is_present(i)) sum += votes[static_cast<std::size_t>(i)], ++members;
    return sum / members;
  }

  ChunkkvConfig cfg_;
  int budget_ = 0;
  std::vector<Matrix> queries_;  // the group's queries by position
};

class ChunkkvCompressor : public Compressor {
 public:
  explicit ChunkkvCompressor(ChunkkvConfig cfg) : cfg_(std::move(cfg)) {}
  std::unique_ptr<CacheState> new_state(const BlockContext& ctx) const override {
    return std::make_unique<ChunkkvState>(ctx, cfg_);
  }
  bool needs_queries() const override { return true; }

 private:
  ChunkkvConfig cfg_;
};

}  // namespace

namespace methods {

MethodInfo chunkkv() {
  std::vector<ParamSpec> params = eviction_budget_params();
  params.push_back({"chunk", ParamType::Int, "10", "c: tokens per chunk (the paper's default)", 1, 1 << 20});
  params.push_back({"window", ParamType::Int, "32", "w: observation window (newest queries; always kept)", 1, 1 << 20});
  params.push_back(inner_param());
  return {"chunkkv", "drop",
          "ChunkKV: keep whole chunks of consecutive tokens ranked by the observation window's attention",
          std::move(params), [](const ParamValues& p, const Registry& r) -> std::unique_ptr<Compressor> {
            ChunkkvConfig c;
            c.budget = eviction_budget_from(p);
            c.chunk = p.get_int("chunk");
            c.window = p.get_int("window");
            c.store = token_store_from(p, r, "chunkkv");
            return std::make_unique<ChunkkvCompressor>(c);
          }};
}

}  // namespace methods

}  // namespace kvlab
