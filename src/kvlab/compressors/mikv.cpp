// mikv: MiKV, "No Token Left Behind: Reliable KV Cache Compression via
// Importance-Aware Mixed Precision Quantization" (Yang et al. 2024),
// docs/methods/mikv.md.
//
// H2O's selection, but the tokens H2O would evict are kept at low precision
// instead of dropped:
//   importance: the attention each token received so far, summed over the GQA
//     group's query heads, on the keys as the cache holds them
//     (metrics/attention_scores.hpp, exactly as h2o.cpp);
//   every token enters at high precision; at prefill the `recent` newest and
//     the `heavy` highest-scoring older tokens stay high and the rest are
//     demoted; each decode step adds the new query's attention and, while more
//     than heavy + recent tokens are high, demotes the lowest-scoring high token
//     older than the recent window (ties: the higher position goes). A demoted
//     token never returns to high precision (its high-precision copy is gone);
//   storage: per-token asymmetric min-max groups (group_quantizer.hpp) with
//     high_bits (16 = FP16, kept exactly) or low_bits; demotion re-quantizes
//     the token as the cache holds it;
//   keys are quantized through MiKV's channel balancer: at prefill
//     b_c = fp16(√(max |q_c| / max |k_c|)) over the prompt (queries: all heads
//     of the group), k ⊙ b is quantized and the reconstruction divided by b
//     (equivalently q ⊘ b · (k ⊙ b)); b_c = 1 where either maximum is 0.
#include <algorithm>
#include <cmath>

#include "kvlab/compressors/h2o.hpp"
#include "kvlab/compressors/recon_buffer.hpp"
#include "kvlab/compressors/registry.hpp"
#include "kvlab/core/error.hpp"
#include "kvlab/core/fp16.hpp"
#include "kvlab/attention/scores.hpp"

namespace kvlab {

namespace {

struct MikvConfig {
  double heavy = 0.1, recent = 0.1;
  int heavy_tokens = 0, recent_tokens = 0;
  int high_bits = 16;  // 16 = FP16
  int low_bits = 2;
  int group = 0;
  bool balance = true;
};

class MikvState : public CacheState {
 public:
  MikvState(const BlockContext& ctx, const MikvConfig& cfg)
      : ctx_(ctx), cfg_(cfg), recon_(ctx.max_tokens, ctx.head_dim), balancer_(RowVector::Ones(ctx.head_dim)) {}

  void prefill(ConstMatrixRef keys, ConstMatrixRef values, const QueryGroup& q) override {
    require_queries(q, "mikv");
    const int p = static_cast<int>(keys.rows());
    heavy_ = budget_count(cfg_.heavy, cfg_.heavy_tokens, p);
    recent_ = std::max(1, budget_count(cfg_.recent, cfg_.recent_tokens, p));
    if (cfg_.balance) balancer_ = channel_balancer(keys, q);
    recon_.resize(p);
    for (int i = 0; i < p; ++i) store_high(i, keys.row(i), values.row(i));
    scores_.assign(static_cast<std::size_t>(std::max(ctx_.max_tokens, p)), 0.0);
    accumulate_attention_scores(q, 0, recon_.view().keys, nullptr, scores_, ctx_.attention);
    if (p <= heavy_ + recent_) return;
    for (int i : non_heavy_positions(scores_, p - recent_, heavy_)) demote(i);
  }

  void append(ConstRowRef key, ConstRowRef value, const QueryGroup& q) override {
    require_queries(q, "mikv");
    const int t = recon_.size();
    recon_.resize(t + 1);
    store_high(t, key, value);
    if (static_cast<int>(scores_.size()) <= t) scores_.resize(static_cast<std::size_t>(2 * t + 2), 0.0);
    accumulate_attention_scores(q, t, recon_.view().keys, nullptr, scores_, ctx_.attention);
    while (high_count_ > heavy_ + recent_) {
      int victim = -1;  // lowest score; among equal scores the higher position goes
      for (int i = 0; i <= t - recent_; ++i) {
        if (!high_[i]) continue;
        if (victim < 0 || scores_[i] <= scores_[victim]) victim = i;
      }
      KVLAB_ASSERT(victim >= 0);
      demote(victim);
    }
  }

  int size() const override { return recon_.size(); }
  CacheView view() const override { return recon_.view(); }

  BitCount bits() const override {
    const int d = recon_.head_dim();
    const auto t = static_cast<std::uint64_t>(recon_.size());
    const auto high = static_cast<std::uint64_t>(high_count_);
    BitCount b = token_bits(cfg_.high_bits, d);
    b.codes *= high;
    b.metadata *= high;
    b.fp16_buffer *= high;
    BitCount low = token_bits(cfg_.low_bits, d);
    low.codes *= t - high;
    low.metadata *= t - high;
    b += low;
    if (cfg_.balance && t > 0) b.metadata += 16ULL * static_cast<std::uint64_t>(d);
    if (high != t) b.index = std::min<std::uint64_t>(t, 32ULL * high);  // which tokens are high precision
    return b;
  }

  bool is_high(int i) const { return high_[static_cast<std::size_t>(i)] != 0; }
  const RowVector& balancer() const { return balancer_; }

 private:
  // K and V of one token at `bits` (16 = FP16).
  BitCount token_bits(int bits, int d) const {
    if (bits == 16) {
      BitCount b;
      b.fp16_buffer = fp16_baseline_bits(1, static_cast<std::uint64_t>(d));
      return b;
    }
    const BitCount one = quant_bits(1, d, {bits, QuantAxis::PerToken, cfg_.group});
    return one + one;
  }

  static RowVector channel_balancer(ConstMatrixRef keys, const QueryGroup& q) {
    const int d = static_cast<int>(keys.cols());
    RowVector b = RowVector::Ones(d);
    for (int c = 0; c < d; ++c) {
      double qmax = 0;
      for (const auto& head : q) qmax = std::max(qmax, static_cast<double>(head.col(c).cwiseAbs().maxCoeff()));
      const double kmax = keys.rows() > 0 ? keys.col(c).cwiseAbs().maxCoeff() : 0.0;
      if (qmax > 0 && kmax > 0) b[c] = round_to_fp16(static_cast<float>(std::sqrt(qmax / kmax)));
      if (!(b[c] > 0.0f && std::isfinite(b[c]))) b[c] = 1.0f;  // FP16 underflow/overflow: no balancing
    }
    return b;
  }

  // Writes row i of the cache at `bits` from k, v (in the original basis).
  void store(int i, ConstRowRef key, ConstRowRef value, int bits) {
    auto k = recon_.keys_rows(i, 1);
    auto v = recon_.values_rows(i, 1);
    if (bits == 16) {
      k = key;
      v = value;
      return;
    }
    const QuantConfig qc{bits, QuantAxis::PerToken, cfg_.group};
    const RowVector kb = key.cwiseProduct(balancer_);
    RowVector kq(kb.size());
    fake_quantize(kb, qc, kq);
    k = kq.cwiseQuotient(balancer_);
    const RowVector vin = value;
    RowVector vq(vin.size());
    fake_quantize(vin, qc, vq);
    v = vq;
  }
  void store_high(int i, ConstRowRef key, ConstRowRef value) {
    store(i, key, value, cfg_.high_bits);
    if (static_cast<int>(high_.size()) <= i) high_.resize(static_cast<std::size_t>(2 * i + 2), 0);
    high_[static_cast<std::size_t>(i)] = 1;
    ++high_count_;
  }
  void demote(int i) {
    const RowVector k = recon_.keys_rows(i, 1), v = recon_.values_rows(i, 1);  // as the cache holds them
    store(i, k, v, cfg_.low_bits);
    high_[static_cast<std::size_t>(i)] = 0;
    --high_count_;
  }

  BlockContext ctx_;
  MikvConfig cfg_;
  ReconBuffer recon_;
  RowVector balancer_;
  std::vector<double> scores_;
  std::vector<std::uint8_t> high_;
  int high_count_ = 0;
  int heavy_ = 0, recent_ = 1;
};

class MikvCompressor : public Compressor {
 public:
  explicit MikvCompressor(MikvConfig cfg) : cfg_(cfg) {}
  std::unique_ptr<CacheState> new_state(const BlockContext& ctx) const override {
    return std::make_unique<MikvState>(ctx, cfg_);
  }
  bool needs_queries() const override { return true; }

 private:
  MikvConfig cfg_;
};

}  // namespace

namespace methods {

MethodInfo mikv() {
  std::vector<ParamSpec> params = h2o_params();
  params.push_back({"high_bits", ParamType::Int, "16", "bits of important tokens (16 = FP16, kept exactly)", 2, 16});
  params.push_back({"low_bits", ParamType::Int, "2", "bits of the other tokens (H2O would evict them)", 1, 8});
  params.push_back(
      {"group", ParamType::Int, "0", "per-token quantization group in channels (0 = the whole token)", 0, 65536});
  params.push_back({"balance", ParamType::Bool, "true",
                    "key channel balancer b = sqrt(max|q|/max|k|) from the prompt (outlier-aware keys)"});
  return {"mikv", "quant",
          "MiKV: H2O's important tokens at high precision, the rest kept at low precision (not evicted), "
          "balanced key channels",
          std::move(params), [](const ParamValues& p, const Registry&) -> std::unique_ptr<Compressor> {
            MikvConfig c;
            c.heavy = p.get_float("heavy");
            c.recent = p.get_float("recent");
            c.heavy_tokens = p.get_int("heavy_tokens");
            c.recent_tokens = p.get_int("recent_tokens");
            c.high_bits = p.get_int("high_bits");
            c.low_bits = p.get_int("low_bits");
            c.group = p.get_int("group");
            c.balance = p.get_bool("balance");
            if (c.low_bits >= c.high_bits)
              fail("low_bits ({}) must be below high_bits ({})", c.low_bits, c.high_bits);
            return std::make_unique<MikvCompressor>(c);
          }};
}

}  // namespace methods

}  // namespace kvlab
