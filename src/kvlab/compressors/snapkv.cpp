// snapkv: prefill-time selection by the observation window's attention
// (REFERENCE: SnapKV), docs/methods/droppers.md.
#include <algorithm>

#include "kvlab/compressors/h2o.hpp"
#include "kvlab/compressors/registry.hpp"
#include "kvlab/core/error.hpp"
#include "kvlab/attention/scores.hpp"

namespace kvlab {

std::vector<double> snapkv_pool(const std::vector<double>& votes, int kernel, bool max_pool) {
  KVLAB_ASSERT(kernel >= 1 && kernel % 2 == 1);
  const int n = static_cast<int>(votes.size());
  const int half = kernel / 2;
  std::vector<double> out(votes.size(), 0.0);
  for (int i = 0; i < n; ++i) {
    const int lo = std::max(0, i - half), hi = std::min(n - 1, i + half);
    double acc = max_pool ? votes[lo] : 0.0;
    for (int j = lo; j <= hi; ++j) acc = max_pool ? std::max(acc, votes[j]) : acc + votes[j];
    out[i] = max_pool ? acc : acc / kernel;
  }
  return out;
}

namespace {

// Prefill: with C the block's capacity and w the window, a prompt of P ≤ C
// tokens is kept whole. Otherwise the last w prompt queries (positions
// [P − w, P)) attend causally to all prompt keys (as the cache holds them); the
// attention every prefix key [0, P − w) receives is summed over the window's
// queries and the group's heads, pooled, and the top C − w prefix keys (ties:
// lower position) are kept together with the window. Decode tokens are all kept.
class SnapKvState : public TokenDropperState {
 public:
  SnapKvState(const BlockContext& ctx, const SnapKvConfig& cfg) : TokenDropperState(ctx, cfg.store), cfg_(cfg) {}

  void prefill(ConstMatrixRef keys, ConstMatrixRef values, const QueryGroup& q) override {
    require_queries(q, "snapkv");
    const int p = static_cast<int>(keys.rows());
    const int w = cfg_.window;
    const int capacity = cfg_.capacity_ratio > 0 ? budget_count(cfg_.capacity_ratio, 0, p) : cfg_.capacity;
    int prefix_keep = std::max(0, capacity - w);
    if (cfg_.pyramid_beta > 0) prefix_keep = pyramid_budget(prefix_keep, ctx_.layer, ctx_.num_layers, cfg_.pyramid_beta);
    store_tokens(keys, values);
    if (p <= prefix_keep + w) return;
    const int prefix = p - w;
    QueryGroup window;
    for (const ConstMatrixRef& h : q) window.emplace_back(h.middleRows(prefix, w));
    std::vector<double> votes = attention_scores(window, prefix, held_keys(), nullptr, ctx_.attention);
    votes.resize(static_cast<std::size_t>(prefix));
    const std::vector<double> pooled = snapkv_pool(votes, cfg_.kernel, cfg_.max_pool);
    std::vector<int> candidates(static_cast<std::size_t>(prefix));
    for (int i = 0; i < prefix; ++i) candidates[i] = i;
    std::vector<char> keep(static_cast<std::size_t>(prefix), 0);
    for (int i : top_positions(candidates, pooled, prefix_keep)) keep[i] = 1;
    for (int i = 0; i < prefix; ++i)
      if (!keep[i]) evict(i);
  }

  void append(ConstRowRef key, ConstRowRef value, const QueryGroup&) override { store_token(key, value); }

 private:
  SnapKvConfig cfg_;
};

class SnapKvCompressor : public Compressor {
 public:
  explicit SnapKvCompressor(SnapKvConfig cfg) : cfg_(std::move(cfg)) {}
  std::unique_ptr<CacheState> new_state(const BlockContext& ctx) const override {
    return std::make_unique<SnapKvState>(ctx, cfg_);
  }
  bool needs_queries() const override { return true; }

 private:
  SnapKvConfig cfg_;
};

}  // namespace

std::vector<ParamSpec> snapkv_params() {
  return {{"window", ParamType::Int, "32", "w: observation window (last prompt queries; always kept)", 1, 1 << 20},
          {"kernel", ParamType::Int, "7", "pooling kernel along tokens (odd)", 1, 1025},
          ParamSpec{"pool", ParamType::Choice, "max", "pooling of the votes", 0, 0, {"max", "avg"}}.only_when(
              {[](const ParamValues& v) { return v.get_int("kernel") > 1; }, "kernel>1"}),
          ParamSpec{"capacity", ParamType::Int, "1024", "C: prompt tokens kept, window included", 1, 1 << 24}.only_when(
              when_zero("capacity_ratio")),
          {"capacity_ratio", ParamType::Float, "0", "C as a fraction of the prompt length (overrides capacity when > 0)",
           0, 1}};
}

SnapKvConfig snapkv_config(const ParamValues& p, const Registry& r, const std::string& method) {
  SnapKvConfig c;
  c.window = p.get_int("window");
  c.kernel = p.get_int("kernel");
  c.max_pool = p.get_choice("pool") == "max";
  c.capacity = p.get_int("capacity");
  c.capacity_ratio = p.get_float("capacity_ratio");
  if (c.kernel % 2 == 0) fail("{}: kernel ({}) must be odd (the pooling is centred)", method, c.kernel);
  if (c.capacity_ratio == 0 && c.capacity <= c.window)
    fail("{}: capacity ({}) must exceed window ({})", method, c.capacity, c.window);
  c.store = token_store_from(p, r, method);
  return c;
}

std::unique_ptr<Compressor> make_snapkv(const SnapKvConfig& cfg) { return std::make_unique<SnapKvCompressor>(cfg); }

namespace methods {

MethodInfo snapkv() {
  std::vector<ParamSpec> params = snapkv_params();
  params.push_back(inner_param());
  return {"snapkv", "drop",
          "SnapKV: at prefill keep the window plus the top pooled-vote prefix tokens; decode tokens all kept",
          std::move(params),
          [](const ParamValues& p, const Registry& r) -> std::unique_ptr<Compressor> {
            return make_snapkv(snapkv_config(p, r, "snapkv"));
          }};
}

}  // namespace methods

}  // namespace kvlab
