#pragma once
// GEAR's codec for one segment of one tensor (REFERENCE: GEAR):
//   X ≈ D̂ + L + S
//   1. S: outliers per backbone vector (outliers.hpp), if sparsity > 0 or an
//      explicit count is given; stored FP16 value + 32-bit position;
//   2. D̂: the rest quantized with the backbone QuantConfig, outliers excluded
//      from each group's min/max (group_quantizer.hpp);
//   3. L: rank-r power-iteration fit of R = X − D̂ − S (lowrank.hpp), if r > 0;
//      r = `rank` for prefill segments, `rank_decode` for decode segments.
// Bits: codes/metadata = quant_bits, sparse = 48 per outlier,
// lowrank = (n + d)·r_eff·16.
// The power-iteration stream is Rng::for_block(seed, layer, kv_head, purpose)
// with purpose derived from (tensor, segment_index).
#include "kvlab/compressors/block_codec.hpp"
#include "kvlab/quant/group_quantizer.hpp"
#include "kvlab/quant/outliers.hpp"

namespace kvlab {

struct GearCodecConfig {
  QuantConfig quant;
  double sparsity = 0.0;
  int outlier_count = -1;  // >= 0: explicit k per side per vector (GEAR-compat keys)
  int rank = 0;            // prefill segments
  int rank_decode = 0;     // decode segments
  int loop = 3;
};

class GearCodec : public BlockCodec {
 public:
  explicit GearCodec(GearCodecConfig cfg) : cfg_(cfg) {}
  BitCount encode(ConstMatrixRef x, MatrixRef out, const SegmentContext& ctx) const override;
  const GearCodecConfig& config() const { return cfg_; }

  // The Rng purpose tag of a segment's power iteration.
  static std::uint64_t rng_purpose(int tensor, int segment_index);

 private:
  GearCodecConfig cfg_;
};

}  // namespace kvlab
