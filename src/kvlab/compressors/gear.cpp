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
//   plus the FP16 tail) is compressed again as one segment with `rank_decode`
//   (the released whole-cache path always passes its decode ranks, at the
//   prompt too); bits = that segment + 16 bits per element still in FP16 (for
//   KIVI-backbone keys, the t mod G newest keys).
// compat_outliers=true (with sparsity > 0): the released code's outlier
//   counts: keys k = ⌊H·d·s/2⌋ per channel of each head; values
//   k = ⌊H·d·s/2⌋ per token across all H kv heads (gear_cross_head.hpp), so
//   the compressor is layer-scoped: one GearCrossHeadState per layer.
#include <optional>

#include "kvlab/compressors/gear_codec.hpp"
#include "kvlab/compressors/gear_cross_head.hpp"
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
    k.outlier_count = released_outlier_count(ctx.num_kv_heads, ctx.head_dim, s.sparsity);
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
  // The next append compresses the whole cache again.
  bool recompresses_on_next_append() const { return recon_.size() + 1 - last_ >= buffer_; }
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
    ctx.prefill = false;  // the released whole-cache path passes its decode ranks: `rank_decode`
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

std::unique_ptr<CacheState> gear_head_state(const GearSettings& s, const BlockContext& ctx, GearParts parts) {
  if (s.recompress) return std::make_unique<GearRecompressState>(ctx, std::move(parts), s.buffer);
  return std::make_unique<StreamCacheState>(ctx, parts.keys, parts.values);
}

// compat_outliers=true: every kv head of a layer, with value outliers chosen
// across heads. Each head is an ordinary GEAR state whose value codec is the
// layer's CrossHeadValueCodec; before a value segment is encoded (the prompt,
// then every n_b tokens), this state gathers that segment's rows of every
// head — exactly what each head's codec will be given — and chooses the
// outliers for all of them.
class GearCrossHeadState : public LayerCacheState {
 public:
  GearCrossHeadState(const GearSettings& s, const BlockContext& ctx)
      : s_(s), k_(released_outlier_count(ctx.num_kv_heads, ctx.head_dim, s.sparsity)) {
    const bool kivi = s.backbone == Backbone::Kivi;
    codec_ = std::make_shared<CrossHeadValueCodec>(QuantConfig{s.bits, QuantAxis::PerToken, kivi ? s.group : 0},
                                                   s.rank, s.rank_decode, s.loop);
    for (int j = 0; j < ctx.num_kv_heads; ++j) {
      BlockContext c = ctx;
      c.kv_head = j;
      GearParts parts = make_parts(s, c);
      parts.values.codec = codec_;
      heads_.push_back(gear_head_state(s, c, std::move(parts)));
    }
  }

  int heads() const override { return static_cast<int>(heads_.size()); }
  const CacheReader& head(int h) const override { return *heads_[static_cast<std::size_t>(h)]; }

  void prefill(std::span<const ConstMatrixRef> keys, std::span<const ConstMatrixRef> values,
               std::span<const QueryGroup> queries) override {
    codec_->set_selection(select_outliers_across_heads(values, k_));  // the prompt is one value segment
    for (std::size_t j = 0; j < heads_.size(); ++j) heads_[j]->prefill(keys[j], values[j], queries[j]);
    codec_->check_used();
  }

  void append(std::span<const ConstRowRef> keys, std::span<const ConstRowRef> values,
              std::span<const QueryGroup> queries) override {
    const bool segment = value_segment_on_next_append();
    if (segment) {
      std::vector<Matrix> rows;
      for (std::size_t j = 0; j < heads_.size(); ++j) rows.push_back(next_segment_rows(j, values[j]));
      const std::vector<ConstMatrixRef> refs(rows.begin(), rows.end());
      codec_->set_selection(select_outliers_across_heads(refs, k_));
    }
    for (std::size_t j = 0; j < heads_.size(); ++j) heads_[j]->append(keys[j], values[j], queries[j]);
    if (segment) codec_->check_used();
  }

 private:
  bool value_segment_on_next_append() const {
    if (s_.recompress) return static_cast<const GearRecompressState&>(*heads_.front()).recompresses_on_next_append();
    const auto& stream = static_cast<const StreamCacheState&>(*heads_.front()).value_stream();
    return stream.fp16_tokens() + 1 >= s_.buffer;  // policy {1, n_b, 0}: the whole FP16 tail
  }
  // Head j's value rows of the segment the next append encodes: the whole
  // cache as stored (recompress) or the FP16 tail (streaming), plus the new row.
  Matrix next_segment_rows(std::size_t j, ConstRowRef value) const {
    const CacheView v = heads_[j]->view();
    const int t = v.tokens();
    const int from = s_.recompress ? 0 : static_cast<const StreamCacheState&>(*heads_[j]).value_stream().compressed_tokens();
    Matrix rows(t - from + 1, v.values.cols());
    rows.topRows(t - from) = v.values.middleRows(from, t - from);
    rows.bottomRows(1) = value;
    return rows;
  }

  GearSettings s_;
  int k_;
  std::shared_ptr<CrossHeadValueCodec> codec_;
  std::vector<std::unique_ptr<CacheState>> heads_;
};

class GearCompressor : public Compressor {
 public:
  explicit GearCompressor(GearSettings s) : s_(s) {}
  Scope scope() const override { return cross_head() ? Scope::Layer : Scope::Block; }
  std::unique_ptr<CacheState> new_state(const BlockContext& ctx) const override {
    KVLAB_ASSERT(!cross_head());
    return gear_head_state(s_, ctx, make_parts(s_, ctx));
  }
  std::unique_ptr<LayerCacheState> new_layer_state(const BlockContext& ctx) const override {
    KVLAB_ASSERT(cross_head());
    return std::make_unique<GearCrossHeadState>(s_, ctx);
  }

 private:
  bool cross_head() const { return s_.compat_outliers && s_.sparsity > 0.0; }
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
                           "released-code outliers: k = floor(H*d*s/2) per key channel, and per token across all "
                           "H kv heads for values (layer-scoped)"}
                     .only_when(when_positive("sparsity")));
  }
  if (var.lowrank) {
    const ParamCondition streaming = when_equals("recompress", {"false"});
    ps.push_back(ParamSpec{"rank", ParamType::Int, "4", "r: low-rank rank for the prefill segment", 0, 4096}.only_when(
        streaming));
    ps.push_back({"rank_decode", ParamType::Int, "2",
                  "low-rank rank for decode segments; with recompress=true for every whole-cache compression "
                  "(the released code's decode ranks)",
                  0, 4096});
    ps.push_back(ParamSpec{"loop", ParamType::Int, "3", "power-iteration steps", 1, 100}.only_when(
        any_of({all_of({when_positive("rank"), streaming}), when_positive("rank_decode")})));
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
