// think: query-driven pruning of key channels (Xu et al. 2025, "ThinK: Thinner
// Key Cache by Query-Driven Pruning"), docs/methods/eviction.md.
#include <algorithm>
#include <numeric>

#include "kvlab/compressors/recon_buffer.hpp"
#include "kvlab/compressors/registry.hpp"
#include "kvlab/compressors/scored_dropper.hpp"

namespace kvlab {

namespace {

struct ThinkConfig {
  double prune = 0.5;  // λ: fraction of key channels pruned
  int window = 32;
  int recent = 32;
  EvictionMode mode = EvictionMode::Prefill;
};

// One channel set per block (kv head), chosen at prefill: with the window's
// queries (the last w prompt queries of every head of the GQA group),
//   score_c = (Σ_heads Σ_window q_c²) · (Σ_prompt k_c²)
// (the released code's mean-of-squares product, the paper's ‖Q_c‖·‖K_c‖ squared
// up to constants), and the n = ⌊λ·d⌋ lowest-scoring channels are pruned (ties:
// the higher channel). Pruned channels of a key are zero in the cache, so the
// logits use only the kept channels. The newest `recent` keys stay whole:
// mode=prefill prunes prompt keys [0, P − recent) and keeps decode keys whole
// (the released code); mode=decode also prunes every key once it is older than
// the newest `recent`. Values are never pruned.
//
// Bits: FP16 for every value element and every kept key element, plus the
// d-bit channel mask once any key is pruned:
//   fp16_buffer = 16·(2·d·t − n·pruned_tokens),  metadata = d (if pruned_tokens > 0).
class ThinkState : public CacheState {
 public:
  ThinkState(const BlockContext& ctx, const ThinkConfig& cfg)
      : cfg_(cfg), recon_(ctx.max_tokens, ctx.head_dim), kept_channel_(static_cast<std::size_t>(ctx.head_dim), 1) {}

  void prefill(ConstMatrixRef keys, ConstMatrixRef values, const QueryGroup& q) override {
    require_queries(q, "think");
    const int p = static_cast<int>(keys.rows()), d = static_cast<int>(keys.cols());
    recon_.resize(p);
    recon_.keys_rows(0, p) = keys;
    recon_.values_rows(0, p) = values;
    pruned_channels_ = budget_count(cfg_.prune, 0, d);
    if (pruned_channels_ == 0) return;
    const int w = std::min(cfg_.window, p);
    std::vector<double> score(static_cast<std::size_t>(d));
    for (int c = 0; c < d; ++c) {
      double qs = 0, ks = 0;
      for (const ConstMatrixRef& h : q)
        for (int r = p - w; r < p; ++r) qs += static_cast<double>(h(r, c)) * h(r, c);
      for (int i = 0; i < p; ++i) ks += static_cast<double>(keys(i, c)) * keys(i, c);
      score[static_cast<std::size_t>(c)] = qs * ks;
    }
    std::vector<int> channels(static_cast<std::size_t>(d));
    std::iota(channels.begin(), channels.end(), 0);
    std::fill(kept_channel_.begin(), kept_channel_.end(), 0);
    for (int c : top_positions(channels, score, d - pruned_channels_)) kept_channel_[static_cast<std::size_t>(c)] = 1;
    prune_up_to(p - cfg_.recent);
  }

  void append(ConstRowRef key, ConstRowRef value, const QueryGroup&) override {
    const int t = size();
    recon_.resize(t + 1);
    recon_.keys_rows(t, 1) = key;
    recon_.values_rows(t, 1) = value;
    if (cfg_.mode == EvictionMode::Decode) prune_up_to(t + 1 - cfg_.recent);
  }

  int size() const override { return recon_.size(); }
  CacheView view() const override { return recon_.view(); }

  BitCount bits() const override {
    const auto d = static_cast<std::uint64_t>(recon_.head_dim()), t = static_cast<std::uint64_t>(size());
    BitCount b;
    b.fp16_buffer = 16 * (2 * d * t - static_cast<std::uint64_t>(pruned_channels_) * static_cast<std::uint64_t>(pruned_tokens_));
    if (pruned_tokens_ > 0) b.metadata = d;
    return b;
  }

 private:
  // Prunes the keys of positions [pruned_tokens_, end).
  void prune_up_to(int end) {
    if (pruned_channels_ == 0) return;
    for (int i = pruned_tokens_; i < end; ++i)
      for (std::size_t c = 0; c < kept_channel_.size(); ++c)
        if (!kept_channel_[c]) recon_.keys_rows(i, 1)(0, static_cast<Eigen::Index>(c)) = 0.0f;
    pruned_tokens_ = std::max(pruned_tokens_, end);
  }

  ThinkConfig cfg_;
  ReconBuffer recon_;
  std::vector<char> kept_channel_;
  int pruned_channels_ = 0;
  int pruned_tokens_ = 0;  // keys [0, pruned_tokens_) are pruned
};

class ThinkCompressor : public Compressor {
 public:
  explicit ThinkCompressor(ThinkConfig cfg) : cfg_(cfg) {}
  std::unique_ptr<CacheState> new_state(const BlockContext& ctx) const override {
    return std::make_unique<ThinkState>(ctx, cfg_);
  }
  bool needs_queries() const override { return true; }

 private:
  ThinkConfig cfg_;
};

}  // namespace

namespace methods {

MethodInfo think() {
  return {"think", "drop",
          "ThinK: prune the key channels the observation window's queries use least (values and recent keys whole)",
          {{"prune", ParamType::Float, "0.5", "lambda: fraction of key channels pruned, n = floor(lambda*d)", 0, 1},
           ParamSpec{"window", ParamType::Int, "32", "observation window: the last prompt queries that score the channels",
                     1, 1 << 20}
               .only_when(when_positive("prune")),
           ParamSpec{"recent", ParamType::Int, "32", "the newest keys kept whole", 0, 1 << 20}.only_when(
               when_positive("prune")),
           ParamSpec{"mode", ParamType::Choice, "prefill",
                     "prefill: prune prompt keys only (released code); decode: also prune decode keys once older than "
                     "recent",
                     0, 0, {"prefill", "decode"}}
               .only_when(when_positive("prune"))},
          [](const ParamValues& p, const Registry&) -> std::unique_ptr<Compressor> {
            ThinkConfig c;
            c.prune = p.get_float("prune");
            c.window = p.get_int("window");
            c.recent = p.get_int("recent");
            c.mode = p.get_choice("mode") == "decode" ? EvictionMode::Decode : EvictionMode::Prefill;
            return std::make_unique<ThinkCompressor>(c);
          }};
}

}  // namespace methods

}  // namespace kvlab
