#include "kvlab/compressors/gear_codec.hpp"

#include "kvlab/core/rng.hpp"
#include "kvlab/quant/lowrank.hpp"

namespace kvlab {

std::uint64_t GearCodec::rng_purpose(int tensor, int segment_index) {
  return 0x6EA2000000000000ULL ^ (static_cast<std::uint64_t>(segment_index) << 1) ^
         static_cast<std::uint64_t>(tensor & 1);
}

BitCount GearCodec::encode(ConstMatrixRef x, MatrixRef out, const SegmentContext& ctx) const {
  const int n = static_cast<int>(x.rows()), d = static_cast<int>(x.cols());
  const int rank = ctx.prefill ? cfg_.rank : cfg_.rank_decode;
  const bool lowrank = rank > 0 && lowrank_effective_rank(n, d, rank) > 0;
  const bool sparse = cfg_.outlier_count >= 0 || cfg_.sparsity > 0.0;
  OutlierSet s;
  if (sparse) s = extract_outliers(x, OutlierConfig{cfg_.quant.axis, cfg_.sparsity, cfg_.outlier_count});
  const ElementMask* mask = sparse ? &s.mask : nullptr;
  BitCount bits;
  if (lowrank) {
    // D̂ + S and the residual R = X − D̂ − S in one pass.
    Matrix residual;
    bits = quantize_with_residual(x, cfg_.quant, out, residual, mask);
    Rng rng = Rng::for_block(ctx.seed, ctx.layer, ctx.kv_head, rng_purpose(ctx.tensor, ctx.segment_index));
    const LowRankFactors f = power_iteration(residual, rank, cfg_.loop, rng);
    add_lowrank(f, out);
    bits.lowrank = lowrank_bits(n, d, rank);
  } else {
    bits = fake_quantize(x, cfg_.quant, out, mask);
    if (sparse) add_outliers(s, out);
  }
  if (sparse) bits.sparse = s.bits();
  return bits;
}

}  // namespace kvlab
