// turboquant: TurboQuant (Zandieh et al. 2025), docs/methods/turboquant.md.
//
// Every token is quantized on arrival (policy (1, 1, 0): no FP16 window):
//   values: TurboQuant_mse with `bits` bits per coordinate;
//   keys:   TurboQuant_prod with `bits` bits — (bits − 1)-bit TurboQuant_mse
//           plus a 1-bit QJL sketch of the residual — whose reconstruction x̃
//           gives the unbiased inner-product estimator ⟨q, x̃⟩; the default
//           key_logits (q·K̂ᵀ) therefore is the paper's estimator. qjl=false:
//           keys use TurboQuant_mse with `bits` bits, like values.
// Per block: rotations R_K, R_V (Rng purposes of rotation.hpp) and the QJL
// matrix S (purpose kTurboQjl) from the run seed.
#include "kvlab/compressors/registry.hpp"
#include "kvlab/compressors/stream_state.hpp"
#include "kvlab/core/error.hpp"
#include "kvlab/quant/turbo_quant.hpp"

namespace kvlab {

namespace {

constexpr std::uint64_t kTurboQjl = 0x5455524251A1ULL;

class TurboMseCodec : public BlockCodec {
 public:
  explicit TurboMseCodec(TurboMse q) : q_(std::move(q)) {}
  BitCount encode(ConstMatrixRef x, MatrixRef out, const SegmentContext&) const override {
    q_.quantize(x, out);
    return token_bits(static_cast<int>(x.rows()), TurboMse::vector_bits(static_cast<int>(x.cols()), q_.bits()));
  }
  static BitCount token_bits(int n, BitCount one) {
    one.codes *= static_cast<std::uint64_t>(n);
    one.metadata *= static_cast<std::uint64_t>(n);
    return one;
  }

 private:
  TurboMse q_;
};

class TurboProdCodec : public BlockCodec {
 public:
  TurboProdCodec(TurboProd q, int bits) : q_(std::move(q)), bits_(bits) {}
  BitCount encode(ConstMatrixRef x, MatrixRef out, const SegmentContext&) const override {
    q_.quantize(x, out);
    return TurboMseCodec::token_bits(static_cast<int>(x.rows()),
                                     TurboProd::vector_bits(static_cast<int>(x.cols()), bits_));
  }

 private:
  TurboProd q_;
  int bits_;
};

struct TurboSettings {
  int bits = 3;
  bool qjl = true;
  RotationKind rotation = RotationKind::Random;
};

class TurboQuantCompressor : public Compressor {
 public:
  explicit TurboQuantCompressor(TurboSettings s) : s_(s) {}
  std::unique_ptr<CacheState> new_state(const BlockContext& ctx) const override {
    const int d = ctx.head_dim;
    if (d < 2) fail("turboquant needs head_dim >= 2, found {}", d);
    auto rotation = [&](int tensor) { return Rotation::for_block(s_.rotation, d, ctx.seed, ctx.layer, ctx.kv_head, tensor); };
    std::shared_ptr<const BlockCodec> keys;
    if (s_.qjl) {
      Rng rng = Rng::for_block(ctx.seed, ctx.layer, ctx.kv_head, kTurboQjl);
      keys = std::make_shared<TurboProdCodec>(TurboProd(s_.bits, rotation(0), qjl_gaussian(d, rng)), s_.bits);
    } else {
      keys = std::make_shared<TurboMseCodec>(TurboMse(s_.bits, rotation(0)));
    }
    auto values = std::make_shared<TurboMseCodec>(TurboMse(s_.bits, rotation(1)));
    return std::make_unique<StreamCacheState>(ctx, StreamSpec{keys, {1, 1, 0}}, StreamSpec{values, {1, 1, 0}});
  }

 private:
  TurboSettings s_;
};

}  // namespace

namespace methods {

MethodInfo turboquant() {
  return {"turboquant", "quant",
          "TurboQuant: random rotation + Lloyd-Max codebook per coordinate; keys add a 1-bit QJL residual sketch "
          "(unbiased q.k)",
          {{"bits", ParamType::Int, "3", "bits per coordinate (keys: bits-1 codebook bits + 1 QJL bit)", 1, 8},
           {"qjl", ParamType::Bool, "true", "keys: TurboQuant_prod (QJL residual); false: TurboQuant_mse like values"},
           {"rotation", ParamType::Choice, "random",
            "random: seeded random orthogonal matrix (the paper); hadamard: random signs + Walsh-Hadamard", 0, 0,
            {"random", "hadamard"}}},
          [](const ParamValues& p, const Registry&) -> std::unique_ptr<Compressor> {
            TurboSettings s;
            s.bits = p.get_int("bits");
            s.qjl = p.get_bool("qjl");
            s.rotation = parse_rotation_kind(p.get_choice("rotation"));
            return std::make_unique<TurboQuantCompressor>(s);
          }};
}

}  // namespace methods

}  // namespace kvlab
