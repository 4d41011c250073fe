// lagkv: score tokens by lag-relative statistics, no attention needed (Liang et
// al. 2025, "LagKV: Lag-Relative Information of the KV Cache Tells Which Tokens
// Are Important"), docs/methods/eviction.md.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "kvlab/compressors/registry.hpp"
#include "kvlab/compressors/scored_dropper.hpp"

namespace kvlab {

namespace {

// LagKV's score of the `part` rows of x, with `ref` (the next partition) as the
// reference: each channel is min-max normalised by the reference's range
// (a constant channel normalises to 0), the token's score is the standard
// deviation over channels (unbiased, as torch.std), and the scores are
// softmax-normalised over the partition.
std::vector<double> lag_scores(ConstMatrixRef x, const std::vector<int>& part, const std::vector<int>& ref) {
  const auto d = x.cols();
  std::vector<double> mn(static_cast<std::size_t>(d)), mx(static_cast<std::size_t>(d));
  for (Eigen::Index c = 0; c < d; ++c) {
    mn[static_cast<std::size_t>(c)] = mx[static_cast<std::size_t>(c)] = x(ref.front(), c);
    for (int r : ref) {
      mn[static_cast<std::size_t>(c)] = std::min<double>(mn[static_cast<std::size_t>(c)], x(r, c));
      mx[static_cast<std::size_t>(c)] = std::max<double>(mx[static_cast<std::size_t>(c)], x(r, c));
    }
  }
  std::vector<double> s(part.size());
  std::vector<double> row(static_cast<std::size_t>(d));
  for (std::size_t k = 0; k < part.size(); ++k) {
    double mean = 0;
    for (Eigen::Index c = 0; c < d; ++c) {
      const auto cc = static_cast<std::size_t>(c);
      const double range = mx[cc] - mn[cc];
      row[cc] = range == 0 ? 0.0 : (x(part[k], c) - mn[cc]) / range;
      mean += row[cc];
    }
    mean /= static_cast<double>(d);
    double var = 0;
    for (double v : row) var += (v - mean) * (v - mean);
    s[k] = std::sqrt(var / static_cast<double>(d - 1));
  }
  const double top = *std::max_element(s.begin(), s.end());
  double sum = 0;
  for (double& v : s) sum += (v = std::exp(v - top));
  for (double& v : s) v /= sum;
  return s;
}

struct LagkvConfig {
  EvictionBudget budget;
  int lag = 128;
  int sinks = 4;
  TokenStore store;
};

// Layout: S sinks, then partitions of L tokens on a fixed grid from position S.
// A partition is scored with the next one as reference; key and value scores
// are averaged. The S sinks and the newest tokens (the last full partition plus
// the remainder, which have no reference yet) are always kept.
//
// Prefill (kvpress's layout, exact budget): the B highest of these priorities
// are kept (ties: the lower position): sinks 3, newest tokens 1 + (i − s)/(P − s)
// from the first unscored position s, a partition's tokens rank/L in [0, 1)
// (rank by score within the partition, so the same count comes from every
// partition). A prompt shorter than S + 2L has no scored partition: sinks and
// the newest tokens are kept, as StreamingLLM.
// mode=decode (the paper's recursion): whenever the unscored tokens reach 2L,
// the oldest L of them are scored with the next L as reference and cut to
// q = clamp(⌊B·L/P⌋, 1, L) tokens, so decode tokens are kept at the prompt's
// rate.
class LagkvState : public TokenDropperState {
 public:
  LagkvState(const BlockContext& ctx, const LagkvConfig& cfg) : TokenDropperState(ctx, cfg.store), cfg_(cfg) {}

  void prefill(ConstMatrixRef keys, ConstMatrixRef values, const QueryGroup&) override {
    const int p = static_cast<int>(keys.rows()), s = std::min(cfg_.sinks, p), l = cfg_.lag;
    budget_ = cfg_.budget.tokens(p);
    quota_ = std::clamp(static_cast<int>(static_cast<long long>(budget_) * l / p), 1, l);
    store_tokens(keys, values);
    const int partitions = p >= s + 2 * l ? (p - s) / l : 0;
    unscored_ = partitions > 0 ? s + (partitions - 1) * l : s;
    if (p <= budget_) return;
    std::vector<double> priority(static_cast<std::size_t>(p));
    for (int i = 0; i < s; ++i) priority[static_cast<std::size_t>(i)] = 3.0;
    for (int i = unscored_; i < p; ++i)
      priority[static_cast<std::size_t>(i)] = 1.0 + static_cast<double>(i - unscored_) / (p - unscored_);
    for (int k = 0; k + 1 < partitions; ++k) {
      const std::vector<int> part = range(s + k * l), ref = range(s + (k + 1) * l);
      const std::vector<double> sc = scores(part, ref);
      std::vector<int> order(part.size());
      std::iota(order.begin(), order.end(), 0);
      // Ascending score; among equals the higher position ranks lower (so the lower is kept).
      std::sort(order.begin(), order.end(), [&](int a, int b) { return sc[a] != sc[b] ? sc[a] < sc[b] : a > b; });
      for (std::size_t r = 0; r < order.size(); ++r)
        priority[static_cast<std::size_t>(part[order[r]])] = static_cast<double>(r) / l;
    }
    std::vector<int> all(static_cast<std::size_t>(p));
    std::iota(all.begin(), all.end(), 0);
    std::vector<char> keep(static_cast<std::size_t>(p), 0);
    for (int i : top_positions(all, priority, budget_)) keep[static_cast<std::size_t>(i)] = 1;
    for (int i = 0; i < p; ++i)
      if (!keep[static_cast<std::size_t>(i)]) evict(i);
  }

  void append(ConstRowRef key, ConstRowRef value, const QueryGroup&) override {
    store_token(key, value);
    if (cfg_.budget.mode != EvictionMode::Decode) return;
    const int l = cfg_.lag;
    while (size() - unscored_ >= 2 * l) {
      const std::vector<int> part = present_in(unscored_), ref = present_in(unscored_ + l);
      unscored_ += l;
      if (static_cast<int>(part.size()) <= quota_ || ref.empty()) continue;
      const std::vector<double> sc = scores(part, ref);
      std::vector<double> by_position(static_cast<std::size_t>(size()), 0.0);
      for (std::size_t k = 0; k < part.size(); ++k) by_position[static_cast<std::size_t>(part[k])] = sc[k];
      std::vector<char> keep(static_cast<std::size_t>(size()), 0);
      for (int i : top_positions(part, by_position, quota_)) keep[static_cast<std::size_t>(i)] = 1;
      for (int i : part)
        if (!keep[static_cast<std::size_t>(i)]) evict(i);
    }
  }

 private:
  std::vector<int> range(int start) const {
    std::vector<int> r(static_cast<std::size_t>(cfg_.lag));
    std::iota(r.begin(), r.end(), start);
    return r;
  }
  std::vector<int> present_in(int start) const {
    std::vector<int> r;
    for (int i = start; i < start + cfg_.lag; ++i)
      if (is_present(i)) r.push_back(i);
    return r;
  }
  // (key score + value score) / 2 of the partition's rows.
  std::vector<double> scores(const std::vector<int>& part, const std::vector<int>& ref) const {
    const CacheView v = view();
    const std::vector<double> k = lag_scores(v.keys, part, ref), val = lag_scores(v.values, part, ref);
    std::vector<double> s(part.size());
    for (std::size_t i = 0; i < s.size(); ++i) s[i] = (k[i] + val[i]) / 2;
    return s;
  }

  LagkvConfig cfg_;
  int budget_ = 0, quota_ = 1;
  int unscored_ = 0;  // first position of the tokens not yet scored (grid-aligned)
};

class LagkvCompressor : public Compressor {
 public:
  explicit LagkvCompressor(LagkvConfig cfg) : cfg_(std::move(cfg)) {}
  std::unique_ptr<CacheState> new_state(const BlockContext& ctx) const override {
    return std::make_unique<LagkvState>(ctx, cfg_);
  }

 private:
  LagkvConfig cfg_;
};

}  // namespace

namespace methods {

MethodInfo lagkv() {
  std::vector<ParamSpec> params = eviction_budget_params();
  params.push_back({"lag", ParamType::Int, "128", "L: partition length; each partition is scored against the next", 2,
                    1 << 20});
  params.push_back({"sinks", ParamType::Int, "4", "S: first positions always kept", 0, 1 << 20});
  params.push_back(inner_param());
  return {"lagkv", "drop",
          "LagKV: score each partition by its min-max-normalised spread relative to the next (no attention needed)",
          std::move(params), [](const ParamValues& p, const Registry& r) -> std::unique_ptr<Compressor> {
            LagkvConfig c;
            c.budget = eviction_budget_from(p);
            c.lag = p.get_int("lag");
            c.sinks = p.get_int("sinks");
            c.store = token_store_from(p, r, "lagkv");
            return std::make_unique<LagkvCompressor>(c);
          }};
}

}  // namespace methods

}  // namespace kvlab
