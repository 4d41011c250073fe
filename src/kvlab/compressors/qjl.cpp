// qjl: 1-bit Johnson-Lindenstrauss sketch of keys with an unbiased score
// estimator (REFERENCE: QJL), docs/methods/qjl.md.
//
// Keys older than the FP16 buffer are stored as sign(S·k) (m bits) plus ‖k‖
// (FP16); S is an m × d standard Gaussian matrix drawn once per block from
// Rng::for_block(seed, layer, kv_head, kQjlSketch) and shared by every token of
// the block. Logits for a sketched position are estimated as
//   √(π/2)/m · ‖k‖ · ⟨S·q, sign(S·k)⟩
// (sign(0) = +1), exact q·k for FP16 positions. Values older than the buffer
// are quantized per-token (group_quantizer). The most recent `buffer` keys and
// values stay FP16 (a sliding window: one token leaves it per decode step).
//
// view().keys holds, for sketched positions, k̃ = √(π/2)/m · ‖k‖ · Sᵀ·sign(S·k),
// whose dot product with q is exactly the estimator (and E[k̃] = k), but it is
// not a reconstruction: keys_reconstructible() is false.
#include <algorithm>
#include <cmath>
#include <numbers>

#include "kvlab/compressors/compressed_stream.hpp"
#include "kvlab/compressors/registry.hpp"
#include "kvlab/core/fp16.hpp"
#include "kvlab/core/rng.hpp"
#include "kvlab/compressors/quant_codec.hpp"

namespace kvlab {

namespace {

constexpr std::uint64_t kQjlSketch = 0x514A4C;  // "QJL"

struct QjlConfig {
  int sketch = 256;
  int value_bits = 2;
  int value_group = 32;
  int buffer = 128;
};

class QjlState : public CacheState {
 public:
  QjlState(const BlockContext& ctx, const QjlConfig& cfg)
      : cfg_(cfg),
        recon_(ctx.max_tokens, ctx.head_dim),
        values_(std::make_shared<QuantCodec>(QuantConfig{cfg.value_bits, QuantAxis::PerToken, cfg.value_group}),
                StreamPolicy{1, 1, cfg.buffer}, SegmentContext{ctx.seed, ctx.layer, ctx.kv_head}, 1, ctx.head_dim),
        s_(cfg.sketch, ctx.head_dim),
        signs_(std::max(ctx.max_tokens, 1), cfg.sketch),
        norms_(static_cast<std::size_t>(std::max(ctx.max_tokens, 1)), 0.0f) {
    Rng rng = Rng::for_block(ctx.seed, ctx.layer, ctx.kv_head, kQjlSketch);
    for (int i = 0; i < s_.rows(); ++i)
      for (int j = 0; j < s_.cols(); ++j) s_(i, j) = static_cast<float>(rng.normal());
  }

  void prefill(ConstMatrixRef keys, ConstMatrixRef values, const QueryGroup&) override {
    const int p = static_cast<int>(keys.rows());
    recon_.resize(p);
    recon_.keys_rows(0, p) = keys;
    values_.prefill(values, recon_);
    while (sketched_ < p - cfg_.buffer) sketch_next();
  }

  void append(ConstRowRef key, ConstRowRef value, const QueryGroup&) override {
    const int t = recon_.size();
    recon_.resize(t + 1);
    recon_.keys_rows(t, 1) = key;
    values_.append(value, recon_);
    while (sketched_ < t + 1 - cfg_.buffer) sketch_next();
  }

  int size() const override { return recon_.size(); }
  CacheView view() const override { return recon_.view(); }

  BitCount bits() const override {
    BitCount b = values_.bits();
    const auto n = static_cast<std::uint64_t>(sketched_);
    b.codes += n * static_cast<std::uint64_t>(cfg_.sketch);
    b.metadata += 16ULL * n;
    b.fp16_buffer += 16ULL * static_cast<std::uint64_t>(recon_.size() - sketched_) *
                     static_cast<std::uint64_t>(recon_.head_dim());
    return b;
  }

  void key_logits(ConstMatrixRef q, MatrixRef out) const override {
    const int t = recon_.size();
    const int n = sketched_;
    if (n > 0) {
      const Matrix sq = q * s_.transpose();  // [g × m]
      out.leftCols(n).noalias() = sq * signs_.topRows(n).transpose();
      const double c = std::sqrt(std::numbers::pi / 2.0) / cfg_.sketch;
      for (int i = 0; i < n; ++i) out.col(i) *= static_cast<float>(c * norms_[i]);
    }
    if (t > n) out.middleCols(n, t - n).noalias() = q * recon_.view().keys.middleRows(n, t - n).transpose();
  }
  bool keys_reconstructible() const override { return false; }

  // Keys: rows fed since and rows sketched since (sketched_ = max(0, t − buffer)
  // at every size t); values: the stream's own changes.
  void changes_since(int since, CacheChanges& out) const override {
    KVLAB_ASSERT(since >= 0 && since <= size());
    out.clear();
    add_rows(out.keys, since, size());
    add_rows(out.keys, std::max(0, since - cfg_.buffer), std::min(sketched_, since));
    values_.changes_since(since, out.values);
  }
  int frozen_rows() const override { return std::min(sketched_, values_.compressed_tokens()); }

 private:
  void sketch_next() {
    const int i = sketched_;
    if (i >= signs_.rows()) {  // max_tokens is only a capacity hint
      signs_.conservativeResize(2 * signs_.rows() + 1, Eigen::NoChange);
      norms_.resize(static_cast<std::size_t>(signs_.rows()), 0.0f);
    }
    auto k = recon_.keys_rows(i, 1);
    const RowVector sk = k * s_.transpose();
    for (int j = 0; j < cfg_.sketch; ++j) signs_(i, j) = sk[j] >= 0.0f ? 1.0f : -1.0f;
    norms_[i] = round_to_fp16(k.norm());
    const double c = std::sqrt(std::numbers::pi / 2.0) / cfg_.sketch * norms_[i];
    k = (static_cast<float>(c) * (signs_.row(i) * s_)).eval();
    ++sketched_;
  }

  QjlConfig cfg_;
  ReconBuffer recon_;
  CompressedStream values_;
  Matrix s_;      // [m × d]
  Matrix signs_;  // [capacity × m], ±1
  std::vector<float> norms_;
  int sketched_ = 0;  // keys [0, sketched_) are sketched, the rest FP16
};

class QjlCompressor : public Compressor {
 public:
  explicit QjlCompressor(QjlConfig cfg) : cfg_(cfg) {}
  std::unique_ptr<CacheState> new_state(const BlockContext& ctx) const override {
    return std::make_unique<QjlState>(ctx, cfg_);
  }

 private:
  QjlConfig cfg_;
};

}  // namespace

namespace methods {

MethodInfo qjl() {
  return {"qjl", "quant",
          "QJL: keys as 1-bit JL sketches sign(S k) + norm with an unbiased score estimator; values per-token",
          {{"sketch", ParamType::Int, "256", "m: sketch dimension (bits per sketched key)", 1, 1 << 16},
           {"value_bits", ParamType::Int, "2", "bits per value element", 1, 8},
           {"value_group", ParamType::Int, "32", "per-token value group size in channels (0 = whole row)", 0, 65536},
           {"buffer", ParamType::Int, "128", "most recent keys and values kept FP16", 0, 1 << 20}},
          [](const ParamValues& p, const Registry&) -> std::unique_ptr<Compressor> {
            return std::make_unique<QjlCompressor>(QjlConfig{p.get_int("sketch"), p.get_int("value_bits"),
                                                             p.get_int("value_group"), p.get_int("buffer")});
          }};
}

}  // namespace methods

}  // namespace kvlab
