// GEAR and its variants (REFERENCE: GEAR): gear, gear-l, outlier-quant,
// gear-kcvt, gear-l-kcvt — one implementation, one MethodInfo builder, driven
// by a variant description.
//
// Streaming (normal mode, StreamCacheState):
//   keys, KIVI backbone (per-channel groups of G tokens): StreamPolicy {G, n_b, 0}
//     — the prefill segment is the first ⌊P/G⌋·G prompt tokens, so no group
//     ever holds a lone token; the P mod G remaining keys join the FP16 buffer;
//   values, KIVI backbone (per-token groups of G channels): {1, n_b, 0}
//     — the whole prompt is one segment;
//   KCVT backbone (whole-axis groups): keys and values {1, n_b, 0};
//   decode: tokens wait in FP16; whenever n_b have accumulated they become a new
//     segment with its own groups, outliers and low-rank factors (rank_decode).
// Recompress mode (recompress=true, what the released simulation code does):
//   every n_b decode tokens the whole cache *as stored* (earlier reconstruction
//   plus the FP16 tail) is compressed again as one segment with `rank`; bits =
//   that segment + 16 bits per element still in FP16 (for KIVI-backbone keys,
//   the t mod G newest keys).
#include <optional>

#include "kvlab/compressors/gear_codec.hpp"
#include "kvlab/compressors/registry.hpp"
#include "kvlab/compressors/recon_buffer.hpp"
#include "kvlab/compressors/stream_state.hpp"
#include "kvlab/core/error.hpp"

namespace kvlab {

namespace {

enum class Backbone { Kivi, Kcvt };

struct GearSettings {
  int bits = 2, group = 64, rank = 0, rank_decode = 0, loop = 3, buffer = 64;
  double sparsity = 0.0;
  Backbone backbone = Backbone::Kivi;
  bool compat_outliers = false;
  bool recompress = false;
};

struct GearParts {
  StreamSpec keys, values;
  int key_block = 1;  // recompress mode: keys are compressed in multiples of this
};

GearParts make_parts(const GearSettings& s, const BlockContext& ctx) {
  GearCodecConfig k, v;
  const bool kivi = s.backbone == Backbone::Kivi;
  k.quant = QuantConfig{s.bits, QuantAxis::PerChannel, kivi ? s.group : 0};
  v.quant = QuantConfig{s.bits, QuantAxis::PerToken, kivi ? s.group : 0};
  for (GearCodecConfig* c : {&k, &v}) {
    c->sparsity = s.sparsity;
    c->rank = s.rank;
    c->rank_decode = s.rank_decode;
    c->loop = s.loop;
  }
  if (s.compat_outliers && s.sparsity > 0.0)  // released code: k = ⌊H·d·s/2⌋ per key channel
    k.outlier_count = static_cast<int>(static_cast<double>(ctx.num_kv_heads) * ctx.head_dim * s.sparsity / 2.0 + 1e-9);
  GearParts p;
  p.key_block = kivi ? s.group : 1;
  p.keys = {std::make_shared<GearCodec>(k), {p.key_block, s.buffer, 0}};
  p.values = {std::make_shared<GearCodec>(v), {1, s.buffer, 0}};
  return p;
}

// recompress=true: the whole cache is compressed again every n_b tokens.
class GearRecompressState : public CacheState {
 public:
  GearRecompressState(const BlockContext& ctx, GearParts parts, int buffer)
      : recon_(ctx.max_tokens, ctx.head_dim), parts_(std::move(parts)), buffer_(buffer), head_dim_(ctx.head_dim) {
    base_.seed = ctx.seed;
    base_.layer = ctx.layer;
    base_.kv_head = ctx.kv_head;
  }

  void prefill(ConstMatrixRef keys, ConstMatrixRef values, const QueryGroup&) override {
    const int n = static_cast<int>(keys.rows());
    recon_.resize(n);
    recon_.keys_rows(0, n) = keys;
    recon_.values_rows(0, n) = values;
    recompress();
  }
  void append(ConstRowRef key, ConstRowRef value, const QueryGroup&) override {
    const int t = recon_.size();
    recon_.resize(t + 1);
    recon_.keys_rows(t, 1) = key;
    recon_.values_rows(t, 1) = value;
    if (recon_.size() - last_ >= buffer_) recompress();
  }
  int size() const override { return recon_.size(); }
  CacheView view() const override { return recon_.view(); }
  BitCount bits() const override {
    BitCount b = segment_bits_;
    const std::uint64_t fp16_rows = static_cast<std::uint64_t>(2 * recon_.size() - keys_done_ - values_done_);
    b.fp16_buffer += 16ULL * fp16_rows * static_cast<std::uint64_t>(head_dim_);
    return b;
  }
  int recompressions() const { return recompressions_; }
  // A recompression rewrites every row; otherwise only appended rows change.
  void changes_since(int since, CacheChanges& out) const override {
    KVLAB_ASSERT(since >= 0 && since <= size());
    out.clear();
    out.add(last_ > since ? 0 : since, size());
  }

 private:
  BitCount encode(const BlockCodec& codec, MatrixRef rows, int tensor) {
    SegmentContext ctx = base_;
    ctx.tensor = tensor;
    ctx.segment_index = recompressions_;
    ctx.prefill = true;  // the whole cache: `rank`
    ctx.start = 0;
    scratch_.resize(rows.rows(), rows.cols());
    const BitCount b = codec.encode(rows, scratch_, ctx);
    rows = scratch_;
    return b;
  }
  void recompress() {
    const int t = recon_.size();
    keys_done_ = t / parts_.key_block * parts_.key_block;
    values_done_ = t;
    segment_bits_ = {};
    if (keys_done_ > 0) segment_bits_ += encode(*parts_.keys.codec, recon_.keys_rows(0, keys_done_), 0);
    if (values_done_ > 0) segment_bits_ += encode(*parts_.values.codec, recon_.values_rows(0, values_done_), 1);
    last_ = t;
    ++recompressions_;
  }

  ReconBuffer recon_;
  GearParts parts_;
  int buffer_;
  int head_dim_;
  SegmentContext base_;
  int last_ = 0, keys_done_ = 0, values_done_ = 0, recompressions_ = 0;
  BitCount segment_bits_;
  Matrix scratch_;
};

class GearCompressor : public Compressor {
 public:
  explicit GearCompressor(GearSettings s) : s_(s) {}
  std::unique_ptr<CacheState> new_state(const BlockContext& ctx) const override {
    GearParts parts = make_parts(s_, ctx);
    if (s_.recompress) return std::make_unique<GearRecompressState>(ctx, std::move(parts), s_.buffer);
    return std::make_unique<StreamCacheState>(ctx, parts.keys, parts.values);
  }

 private:
  GearSettings s_;
};

// A variant: which parts exist and whether the backbone is fixed.
struct GearVariant {
  const char* name;
  const char* summary;
  bool sparse;
  bool lowrank;
  std::optional<Backbone> backbone;  // nullopt: a `backbone` parameter (default kivi)
};

MethodInfo gear_method(const GearVariant& var) {
  std::vector<ParamSpec> ps = {{"bits", ParamType::Int, "2", "backbone bits per element", 1, 8}};
  const bool kcvt_only = var.backbone == Backbone::Kcvt;
  if (!kcvt_only) {
    ParamSpec group{"group", ParamType::Int, "64", "G: KIVI backbone group (tokens for keys, channels for values)", 1,
                    65536};
    if (!var.backbone) group = std::move(group).only_when(when_equals("backbone", {"kivi"}));
    ps.push_back(std::move(group));
  }
  if (var.sparse) {
    ps.push_back({"sparsity", ParamType::Float, "0.02",
                  "s: outlier fraction per vector (k = floor(s*m/2) largest and smallest kept FP16)", 0, 1});
    ps.push_back(ParamSpec{"compat_outliers", ParamType::Bool, "false",
                           "released-code key outlier count k = floor(H*d*s/2) per channel (H = kv heads)"}
                     .only_when(when_positive("sparsity")));
  }
  if (var.lowrank) {
    const ParamCondition streaming = when_equals("recompress", {"false"});
    ps.push_back({"rank", ParamType::Int, "4", "r: low-rank rank for the prefill segment", 0, 4096});
    ps.push_back(ParamSpec{"rank_decode", ParamType::Int, "2", "low-rank rank for decode segments", 0, 4096}.only_when(
        streaming));
    ps.push_back(ParamSpec{"loop", ParamType::Int, "3", "power-iteration steps", 1, 100}.only_when(
        any_of({when_positive("rank"), all_of({when_positive("rank_decode"), streaming})})));
  }
  ps.push_back({"buffer", ParamType::Int, "64", "n_b: decode tokens kept FP16 before forming a segment", 1, 65536});
  if (!var.backbone)
    ps.push_back({"backbone", ParamType::Choice, "kivi",
                  "kivi: groups of G (keys per-channel, values per-token); kcvt: whole-axis groups", 0, 0,
                  {"kivi", "kcvt"}});
  ps.push_back({"recompress", ParamType::Bool, "false",
                "recompress the whole cache every n_b tokens (released simulation code)"});

  return {var.name, "gear", var.summary, std::move(ps),
          [var](const ParamValues& p, const Registry&) -> std::unique_ptr<Compressor> {
            GearSettings s;
            s.bits = p.get_int("bits");
            if (p.has("group")) s.group = p.get_int("group");
            if (var.sparse) {
              s.sparsity = p.get_float("sparsity");
              s.compat_outliers = p.get_bool("compat_outliers");
            }
            if (var.lowrank) {
              s.rank = p.get_int("rank");
              s.rank_decode = p.get_int("rank_decode");
              s.loop = p.get_int("loop");
            }
            s.buffer = p.get_int("buffer");
            s.backbone = var.backbone ? *var.backbone
                                      : (p.get_choice("backbone") == "kcvt" ? Backbone::Kcvt : Backbone::Kivi);
            s.recompress = p.get_bool("recompress");
            if (s.backbone == Backbone::Kivi && s.group > 1 && s.buffer % s.group == 1)
              fail("buffer ({}) mod group ({}) is 1: a decode segment would quantize a lone key token per-channel",
                   s.buffer, s.group);
            return std::make_unique<GearCompressor>(s);
          }};
}

}  // namespace

namespace methods {

MethodInfo gear() {
  return gear_method({"gear", "GEAR: backbone quantization + low-rank residual (L) + sparse outliers (S)", true,
                      true, std::nullopt});
}
MethodInfo gear_l() {
  return gear_method({"gear-l", "GEAR-L: backbone quantization + low-rank residual, no outliers", false, true,
                      std::nullopt});
}
MethodInfo outlier_quant() {
  return gear_method({"outlier-quant", "Outlier-reduced quantization: backbone + sparse outliers, no low-rank",
                      true, false, std::nullopt});
}
MethodInfo gear_kcvt() {
  return gear_method({"gear-kcvt", "GEAR with the KCVT backbone (whole-axis groups)", true, true, Backbone::Kcvt});
}
MethodInfo gear_l_kcvt() {
  return gear_method({"gear-l-kcvt", "GEAR-L with the KCVT backbone (whole-axis groups)", false, true,
                      Backbone::Kcvt});
}

}  // namespace methods

}  // namespace kvlab
