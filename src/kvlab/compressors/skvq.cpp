// skvq: SKVQ, "Sliding-window Key and Value Cache Quantization for Large
// Language Models" (Duanmu et al. 2024), docs/methods/skvq.md.
//
// Keys and values, per token, through the same stream shape:
//   policy (1, 1, window): the `window` newest tokens stay FP16 (a sliding
//     window: one token leaves it per decode step and is quantized then);
//   the first `sinks` positions stay FP16 for good (attention sinks);
//   every other token: clipped dynamic quantization (clipped_quantizer.hpp)
//     over channel groups — with reorder=true, the channels of each (layer, kv
//     head, tensor) clustered by their [min, max] over the prompt
//     (channel_groups.hpp, ⌈d/group⌉ clusters, computed in calibrate());
//     otherwise contiguous groups of `group` channels;
//   pre_rope=true: keys are quantized (and their channel statistics taken)
//     before RoPE, which is re-applied to the reconstruction (as kvquant.cpp).
// The clustered layout is per-head metadata the decoder needs: each channel's
// group label, ⌈log2 groups⌉ bits per channel, charged once per stream with its
// first segment (contiguous groups are implied by `group`: 0 bits).
#include <array>

#include "kvlab/compressors/registry.hpp"
#include "kvlab/compressors/stream_state.hpp"
#include "kvlab/core/error.hpp"
#include "kvlab/quant/clipped_quantizer.hpp"
#include "kvlab/quant/rope_transform.hpp"

namespace kvlab {

namespace {

struct SkvqSettings {
  ClippedQuantConfig quant;
  int group = 32, window = 128, sinks = 5;
  bool reorder = true, pre_rope = true;
};

struct SkvqCalibration : LayerCalibration {
  std::vector<std::array<ChannelGroups, 2>> groups;  // [head][tensor]
};

int ceil_log2(int n) {
  int b = 0;
  while ((1 << b) < n) ++b;
  return b;
}

class SkvqCodec : public BlockCodec {
 public:
  SkvqCodec(const SkvqSettings& s, ChannelGroups groups, std::optional<RopeInfo> rope, std::uint64_t layout_bits)
      : s_(s), groups_(std::move(groups)), rope_(rope), layout_bits_(layout_bits) {}

  BitCount encode(ConstMatrixRef x, MatrixRef out, const SegmentContext& ctx) const override {
    const int n = static_cast<int>(x.rows()), d = static_cast<int>(x.cols());
    const int exact = std::clamp(s_.sinks - ctx.start, 0, n);
    BitCount b;
    if (exact > 0) {
      out.topRows(exact) = x.topRows(exact);
      b.fp16_buffer = 16ULL * static_cast<std::uint64_t>(exact) * static_cast<std::uint64_t>(d);
    }
    if (const int m = n - exact; m > 0) {
      Matrix y = x.bottomRows(m), yq(m, d);
      if (rope_) rope_rotate(y, *rope_, ctx.start + exact, true);
      b += clipped_quantize(y, groups_, s_.quant, yq);
      if (rope_) rope_rotate(yq, *rope_, ctx.start + exact, false);
      out.bottomRows(m) = yq;
    }
    if (ctx.segment_index == 0) b.metadata += layout_bits_;
    return b;
  }

 private:
  SkvqSettings s_;
  ChannelGroups groups_;
  std::optional<RopeInfo> rope_;  // set for keys with pre_rope
  std::uint64_t layout_bits_;
};

class SkvqCompressor : public Compressor {
 public:
  explicit SkvqCompressor(SkvqSettings s) : s_(s) {}
  bool needs_rope() const override { return s_.pre_rope; }

  std::shared_ptr<const LayerCalibration> calibrate(const LayerView& layer, const BlockContext& ctx) const override {
    if (!s_.reorder) return nullptr;
    check(ctx);
    auto cal = std::make_shared<SkvqCalibration>();
    for (std::size_t h = 0; h < layer.keys.size(); ++h) {
      auto& per_head = cal->groups.emplace_back();
      for (int tensor = 0; tensor < 2; ++tensor) {
        const Matrix& full = tensor == 0 ? layer.keys[h] : layer.values[h];
        const auto rows = std::min<Eigen::Index>(std::max(ctx.prompt_len, 1), full.rows());
        Matrix y = full.topRows(rows);
        if (tensor == 0 && s_.pre_rope) rope_rotate(y, *ctx.rope, 0, true);
        const int d = static_cast<int>(y.cols());
        std::vector<float> mn(static_cast<std::size_t>(d)), mx(static_cast<std::size_t>(d));
        for (int c = 0; c < d; ++c) {
          mn[c] = rows > 0 ? y.col(c).minCoeff() : 0.0f;
          mx[c] = rows > 0 ? y.col(c).maxCoeff() : 0.0f;
        }
        per_head[static_cast<std::size_t>(tensor)] = cluster_channels(mn, mx, clusters(d));
      }
    }
    return cal;
  }

  std::unique_ptr<CacheState> new_state(const BlockContext& ctx) const override {
    check(ctx);
    const int d = ctx.head_dim;
    const auto* cal = dynamic_cast<const SkvqCalibration*>(ctx.calibration.get());
    auto codec = [&](int tensor) {
      // Without calibration (a state built outside the replay engine): contiguous groups.
      ChannelGroups g = cal ? cal->groups[static_cast<std::size_t>(ctx.kv_head)][static_cast<std::size_t>(tensor)]
                            : contiguous_groups(d, s_.group);
      const std::uint64_t layout =
          cal ? static_cast<std::uint64_t>(d) * static_cast<std::uint64_t>(ceil_log2(static_cast<int>(g.size()))) : 0;
      const std::optional<RopeInfo> rope = tensor == 0 && s_.pre_rope ? ctx.rope : std::nullopt;
      return std::make_shared<SkvqCodec>(s_, std::move(g), rope, layout);
    };
    const StreamPolicy policy{1, 1, s_.window};
    return std::make_unique<StreamCacheState>(ctx, StreamSpec{codec(0), policy}, StreamSpec{codec(1), policy});
  }

 private:
  int clusters(int d) const { return std::min(d, (d + s_.group - 1) / s_.group); }
  void check(const BlockContext& ctx) const {
    if (s_.pre_rope && (!ctx.rope || ctx.rope->style == RopeStyle::None))
      fail("skvq with pre_rope=true quantizes keys before RoPE and needs rope_theta/rope_style (neox or gptj) "
           "from the dump; use pre_rope=false for a dump without RoPE");
  }

  SkvqSettings s_;
};

}  // namespace

namespace methods {

MethodInfo skvq() {
  return {"skvq", "quant",
          "SKVQ: channel reordering by clustered ranges, clipped dynamic per-token quantization, FP16 sliding "
          "window and sink tokens",
          {{"bits", ParamType::Int, "2", "bits per element of quantized tokens (keys and values)", 1, 8},
           {"group", ParamType::Int, "32", "channels per group (reorder: ceil(d/group) clusters per head)", 1, 65536},
           {"clip", ParamType::Float, "0.96", "clip ratio alpha: zero = alpha*min, scale = alpha*(max-min)/(2^b-1)",
            0.5, 1},
           {"window", ParamType::Int, "128", "newest tokens kept FP16 (sliding window)", 0, 1 << 20},
           {"sinks", ParamType::Int, "5", "first tokens kept FP16 for good (attention sinks)", 0, 1 << 20},
           {"reorder", ParamType::Bool, "true", "cluster channels with similar [min, max] (over the prompt) into groups"},
           {"pre_rope", ParamType::Bool, "true", "quantize keys before RoPE (needs the dump's RoPE metadata)"},
           {"meta", ParamType::Choice, "fp8", "format of each group's scale and zero point", 0, 0, {"fp8", "fp16"}}},
          [](const ParamValues& p, const Registry&) -> std::unique_ptr<Compressor> {
            SkvqSettings s;
            s.quant.bits = p.get_int("bits");
            s.quant.clip = p.get_float("clip");
            s.quant.meta = p.get_choice("meta") == "fp8" ? MetaFormat::Fp8 : MetaFormat::Fp16;
            s.group = p.get_int("group");
            s.window = p.get_int("window");
            s.sinks = p.get_int("sinks");
            s.reorder = p.get_bool("reorder");
            s.pre_rope = p.get_bool("pre_rope");
            return std::make_unique<SkvqCompressor>(s);
          }};
}

}  // namespace methods

}  // namespace kvlab
