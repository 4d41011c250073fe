// polarquant: PolarQuant (Han et al. 2025, arXiv:2502.02617 — the KV-cache
// paper), docs/methods/polarquant.md.
//
// Keys and values, every token on arrival (policy (1, 1, 0)): random rotation
// (one Haar matrix per block and tensor, from the run seed), recursive polar
// transform with `levels` levels, angles quantized per level (level 1 with
// angle_bits, deeper levels with deep_bits), radii of the last level FP16.
// Codebooks: offline = from the angles' analytic distribution (0 bits);
// online = 1-D k-means on the prompt's angles of the block, per level and
// tensor, fitted in calibrate() on the first prompt_len tokens and stored as
// FP16 (2^b · 16 bits per level, charged once per stream with its first segment).
#include <array>

#include "kvlab/compressors/registry.hpp"
#include "kvlab/compressors/stream_state.hpp"
#include "kvlab/core/error.hpp"
#include "kvlab/quant/nonuniform.hpp"
#include "kvlab/quant/polar_quant.hpp"

namespace kvlab {

namespace {

struct PolarSettings {
  PolarConfig cfg;
  bool online = true;
};

// Online codebooks of one layer: [head][tensor][level − 1].
struct PolarCalibration : LayerCalibration {
  std::vector<std::array<std::vector<std::vector<float>>, 2>> books;
};

std::uint64_t codebook_bits(const PolarConfig& cfg) {
  std::uint64_t b = 0;
  for (int l = 1; l <= cfg.levels; ++l) b += 16ULL << cfg.bits_at(l);
  return b;
}

class PolarCodec : public BlockCodec {
 public:
  PolarCodec(PolarQuantizer q, PolarConfig cfg, std::uint64_t codebook_bits)
      : q_(std::move(q)), cfg_(cfg), codebook_bits_(codebook_bits) {}
  BitCount encode(ConstMatrixRef x, MatrixRef out, const SegmentContext& ctx) const override {
    q_.quantize(x, out);
    BitCount b = PolarQuantizer::vector_bits(static_cast<int>(x.cols()), cfg_);
    const auto n = static_cast<std::uint64_t>(x.rows());
    b.codes *= n;
    b.metadata *= n;
    if (ctx.segment_index == 0) b.metadata += codebook_bits_;
    return b;
  }

 private:
  PolarQuantizer q_;
  PolarConfig cfg_;
  std::uint64_t codebook_bits_;
};

class PolarQuantCompressor : public Compressor {
 public:
  explicit PolarQuantCompressor(PolarSettings s) : s_(s) {}

  std::shared_ptr<const LayerCalibration> calibrate(const LayerView& layer, const BlockContext& ctx) const override {
    if (!s_.online) return nullptr;
    check_dim(ctx.head_dim);
    auto cal = std::make_shared<PolarCalibration>();
    const int heads = static_cast<int>(layer.keys.size());
    for (int h = 0; h < heads; ++h) {
      auto& books = cal->books.emplace_back();
      for (int tensor = 0; tensor < 2; ++tensor) {
        const Matrix& full = tensor == 0 ? layer.keys[h] : layer.values[h];
        Matrix y = full.topRows(std::min<Eigen::Index>(std::max(ctx.prompt_len, 0), full.rows()));
        rotation(ctx, h, tensor).apply(y);
        const PolarCoords c = polar_transform(y, s_.cfg.levels);
        for (int l = 1; l <= s_.cfg.levels; ++l) {
          const double range = polar_angle_range(l);
          LevelHistogram hist;
          const Matrix& psi = c.angles[static_cast<std::size_t>(l - 1)];
          for (Eigen::Index i = 0; i < psi.size(); ++i) hist.add(static_cast<float>(psi.data()[i] / range));
          std::vector<float> book = hist.total() > 0 ? hist.kmeans(1 << s_.cfg.bits_at(l))
                                                     : uniform_unit_levels(1 << s_.cfg.bits_at(l));
          for (float& a : book) a = static_cast<float>(a * range);
          books[static_cast<std::size_t>(tensor)].push_back(std::move(book));
        }
      }
    }
    return cal;
  }

  std::unique_ptr<CacheState> new_state(const BlockContext& ctx) const override {
    check_dim(ctx.head_dim);
    const auto* cal = dynamic_cast<const PolarCalibration*>(ctx.calibration.get());
    auto codec = [&](int tensor) {
      std::vector<std::vector<float>> books;
      if (cal != nullptr)
        books = cal->books[static_cast<std::size_t>(ctx.kv_head)][static_cast<std::size_t>(tensor)];
      else  // offline, or a state built without calibration: the analytic codebooks
        for (int l = 1; l <= s_.cfg.levels; ++l) books.push_back(polar_offline_codebook(l, s_.cfg.bits_at(l)));
      return std::make_shared<PolarCodec>(PolarQuantizer(s_.cfg, rotation(ctx, ctx.kv_head, tensor), std::move(books)),
                                          s_.cfg, cal != nullptr ? codebook_bits(s_.cfg) : 0);
    };
    return std::make_unique<StreamCacheState>(ctx, StreamSpec{codec(0), {1, 1, 0}}, StreamSpec{codec(1), {1, 1, 0}});
  }

 private:
  static Rotation rotation(const BlockContext& ctx, int head, int tensor) {
    return Rotation::for_block(RotationKind::Random, ctx.head_dim, ctx.seed, ctx.layer, head, tensor);
  }
  // Level midpoints (j + 0.5)/k of [0, 1]: the online fallback for an empty prompt.
  static std::vector<float> uniform_unit_levels(int k) {
    std::vector<float> l(static_cast<std::size_t>(k));
    for (int j = 0; j < k; ++j) l[j] = static_cast<float>((j + 0.5) / k);
    return l;
  }
  void check_dim(int d) const {
    if (d % (1 << s_.cfg.levels) != 0)
      fail("polarquant: head_dim {} is not divisible by 2^levels = {}", d, 1 << s_.cfg.levels);
  }

  PolarSettings s_;
};

}  // namespace

namespace methods {

MethodInfo polarquant() {
  const ParamCondition deep{[](const ParamValues& v) { return v.get_int("levels") > 1; }, "levels>1"};
  return {"polarquant", "quant",
          "PolarQuant: random rotation, recursive polar transform, per-level angle codebooks, FP16 block radii",
          {{"levels", ParamType::Int, "4", "L: polar levels (radii of blocks of 2^L coordinates are kept FP16)", 1, 16},
           {"angle_bits", ParamType::Int, "4", "bits per level-1 angle (in [0, 2pi))", 1, 8},
           ParamSpec{"deep_bits", ParamType::Int, "2", "bits per angle of levels 2..L (in [0, pi/2])", 1, 8}.only_when(
               deep),
           {"codebook", ParamType::Choice, "online",
            "online: k-means on the prompt's angles per block (FP16, counted); offline: from the analytic angle "
            "distribution (0 bits)",
            0, 0, {"online", "offline"}}},
          [](const ParamValues& p, const Registry&) -> std::unique_ptr<Compressor> {
            PolarSettings s;
            s.cfg.levels = p.get_int("levels");
            s.cfg.angle_bits = p.get_int("angle_bits");
            s.cfg.deep_bits = p.get_int("deep_bits");
            s.online = p.get_choice("codebook") == "online";
            return std::make_unique<PolarQuantCompressor>(s);
          }};
}

}  // namespace methods

}  // namespace kvlab
