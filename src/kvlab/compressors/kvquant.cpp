// kvquant: KVQuant-style non-uniform quantization (REFERENCE: KVQuant-style).
//
//   keys:   RoPE undone (the layer's RoPE from the dump: frequencies, rotary_dim, scaling; position = token index),
//           per-channel normalisation over the segment's tokens, codebook
//           quantization, RoPE re-applied to the reconstruction;
//   values: per-token normalisation, codebook quantization;
//   dense-and-sparse: per vector the k = ⌊outliers·m/2⌋ largest and smallest
//           entries kept in FP16 (outliers.hpp; 48 bits each);
//   the first `fp16_tokens` positions are kept exactly in FP16 (attention sink);
//   levels: 1-D k-means on normalised values (nonuniform.hpp), calibrated per
//           layer (per_layer=true: one K and one V codebook per layer, from all
//           kv heads; false: one pair per (layer, kv head)).
// Streaming: the prompt is one segment per tensor; decode values are quantized
// one token at a time; decode keys wait in FP16 until `buffer` of them form a
// per-channel segment.
// Bits per segment: b·m·d codes for the m non-FP16 rows, 32 bits per vector
// (FP16 zero + FP16 scale), 48 per outlier, 16·d per FP16 row; and each stream
// (K and V of each block) is charged its whole codebook, 2^b·16 bits, once, with
// its first segment (the codebook is shared by the layer's heads, so this
// over-counts by at most (num_kv_heads − 1)·2·2^b·16 bits per layer; stated
// choice: exact and simple).
#include "kvlab/compressors/registry.hpp"
#include "kvlab/compressors/stream_state.hpp"
#include "kvlab/core/error.hpp"
#include "kvlab/quant/nonuniform.hpp"
#include "kvlab/quant/outliers.hpp"
#include "kvlab/quant/rope_transform.hpp"

namespace kvlab {

namespace {

struct KvquantSettings {
  int bits = 3;
  double outliers = 0.01;
  int fp16_tokens = 1;
  bool per_layer = true;
  int buffer = 128;
};

struct KvquantCalibration : LayerCalibration {
  // [0] = keys, [1] = values; one entry (per_layer) or one per kv head.
  std::vector<std::vector<float>> levels[2];
  const std::vector<float>& get(int tensor, int head) const {
    const auto& v = levels[tensor];
    return v.size() == 1 ? v[0] : v[static_cast<std::size_t>(head)];
  }
};

class KvquantCodec : public BlockCodec {
 public:
  KvquantCodec(const KvquantSettings& s, std::vector<float> levels, std::optional<RopeInfo> rope, bool keys)
      : s_(s), levels_(std::move(levels)), rope_(rope), keys_(keys) {}

  BitCount encode(ConstMatrixRef x, MatrixRef out, const SegmentContext& ctx) const override {
    const int n = static_cast<int>(x.rows()), d = static_cast<int>(x.cols());
    const int exact = std::clamp(s_.fp16_tokens - ctx.start, 0, n);
    BitCount b;
    if (exact > 0) {
      out.topRows(exact) = x.topRows(exact);
      b.fp16_buffer = 16ULL * static_cast<std::uint64_t>(exact) * static_cast<std::uint64_t>(d);
    }
    const int m = n - exact;
    if (m > 0) {
      Matrix y = x.bottomRows(m);
      if (keys_) rope_rotate(y, *rope_, ctx.start + exact, true);
      const QuantAxis axis = keys_ ? QuantAxis::PerChannel : QuantAxis::PerToken;
      const OutlierSet s = extract_outliers(y, OutlierConfig{axis, s_.outliers, -1});
      Matrix yq(m, d);
      b += nuq_quantize(y, axis, levels_, yq, &s.mask);
      add_outliers(s, yq);
      b.sparse += s.bits();
      if (keys_) rope_rotate(yq, *rope_, ctx.start + exact, false);
      out.bottomRows(m) = yq;
    }
    if (ctx.segment_index == 0) b.metadata += 16ULL * levels_.size();
    return b;
  }

 private:
  KvquantSettings s_;
  std::vector<float> levels_;
  std::optional<RopeInfo> rope_;
  bool keys_;
};

class KvquantCompressor : public Compressor {
 public:
  explicit KvquantCompressor(KvquantSettings s) : s_(s) {}
  bool needs_rope() const override { return true; }

  std::shared_ptr<const LayerCalibration> calibrate(const LayerView& layer, const BlockContext& ctx) const override {
    check_rope(ctx);
    auto cal = std::make_shared<KvquantCalibration>();
    const int heads = static_cast<int>(layer.keys.size());
    const int k = 1 << s_.bits;
    for (int tensor = 0; tensor < 2; ++tensor) {
      const QuantAxis axis = tensor == 0 ? QuantAxis::PerChannel : QuantAxis::PerToken;
      LevelHistogram shared;
      for (int h = 0; h < heads; ++h) {
        const Matrix& full = tensor == 0 ? layer.keys[h] : layer.values[h];
        const int t = static_cast<int>(full.rows());
        const int first = std::min(s_.fp16_tokens, t);
        if (t - first <= 0) continue;
        Matrix y = full.bottomRows(t - first);
        if (tensor == 0) rope_rotate(y, *ctx.rope, first, true);
        const OutlierSet s = extract_outliers(y, OutlierConfig{axis, s_.outliers, -1});
        if (s_.per_layer) {
          add_normalised(y, axis, &s.mask, shared);
        } else {
          LevelHistogram own;
          add_normalised(y, axis, &s.mask, own);
          cal->levels[tensor].push_back(own.kmeans(k));
        }
      }
      if (s_.per_layer || cal->levels[tensor].empty()) cal->levels[tensor].assign(1, shared.kmeans(k));
    }
    return cal;
  }

  std::unique_ptr<CacheState> new_state(const BlockContext& ctx) const override {
    check_rope(ctx);
    const int k = 1 << s_.bits;
    // Without calibration (a state built outside the replay engine): uniform levels.
    const auto* cal = dynamic_cast<const KvquantCalibration*>(ctx.calibration.get());
    std::vector<float> kl = cal ? cal->get(0, ctx.kv_head) : uniform_levels(k);
    std::vector<float> vl = cal ? cal->get(1, ctx.kv_head) : uniform_levels(k);
    const StreamSpec keys{std::make_shared<KvquantCodec>(s_, std::move(kl), ctx.rope, true), {1, s_.buffer, 0}};
    const StreamSpec values{std::make_shared<KvquantCodec>(s_, std::move(vl), ctx.rope, false), {1, 1, 0}};
    return std::make_unique<StreamCacheState>(ctx, keys, values);
  }

 private:
  static void check_rope(const BlockContext& ctx) {
    if (!ctx.rope || ctx.rope->style == RopeStyle::None)
      fail("kvquant quantizes keys before RoPE and needs rope_theta (or /rope_inv_freq) and rope_style (neox or "
           "gptj) from the dump");
  }
  KvquantSettings s_;
};

}  // namespace

namespace methods {

MethodInfo kvquant() {
  return {"kvquant",
          "quant",
          "KVQuant-style: pre-RoPE per-channel keys, per-token values, k-means levels, dense-and-sparse",
          {{"bits", ParamType::Int, "3", "bits per element (2^bits k-means levels)", 2, 4},
           {"outliers", ParamType::Float, "0.01",
            "dense-and-sparse fraction per vector (half largest, half smallest kept FP16)", 0, 1},
           {"fp16_tokens", ParamType::Int, "1", "first tokens kept exactly in FP16 (attention sink)", 0, 65536},
           {"per_layer", ParamType::Bool, "true", "one codebook per layer (false: one per layer and kv head)"},
           {"buffer", ParamType::Int, "128", "decode keys kept FP16 until this many form a per-channel segment", 2,
            65536}},
          [](const ParamValues& p, const Registry&) -> std::unique_ptr<Compressor> {
            KvquantSettings s;
            s.bits = p.get_int("bits");
            s.outliers = p.get_float("outliers");
            s.fp16_tokens = p.get_int("fp16_tokens");
            s.per_layer = p.get_bool("per_layer");
            s.buffer = p.get_int("buffer");
            return std::make_unique<KvquantCompressor>(s);
          }};
}

}  // namespace methods

}  // namespace kvlab
