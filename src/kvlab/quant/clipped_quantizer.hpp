#pragma once
// SKVQ's clipped dynamic quantization: per token, over each channel group
// (channel_groups.hpp), with a clip ratio α ∈ (0, 1]:
//   mn, mx = min, max of the token's channels in the group;
//   zero = meta(α·mn), scale = meta(α·(mx − mn)/(2^b − 1)), meta = FP16 or FP8 E4M3 rounding
//   (the stored values; codes are computed with them, as group_quantizer.hpp does);
//   q = clamp(round_half_even((x − zero)/scale), 0, 2^b − 1), x̂ = q·scale + zero;
//   scale == 0: x̂ = zero.
// α < 1 shrinks the range toward zero (α·mn, α·mx, as SKVQ's released code):
// the few extreme values clip and the rest get finer steps.
// Bits: codes = b·n·d; metadata = 2·(16 or 8) per (token, group).
#include "kvlab/core/bit_count.hpp"
#include "kvlab/core/types.hpp"
#include "kvlab/quant/channel_groups.hpp"

namespace kvlab {

enum class MetaFormat { Fp16, Fp8 };

struct ClippedQuantConfig {
  int bits = 2;
  double clip = 1.0;
  MetaFormat meta = MetaFormat::Fp16;
};

int meta_bits(MetaFormat meta);  // 16 or 8

// out may not alias x; groups must partition [0, d).
BitCount clipped_quantize(ConstMatrixRef x, const ChannelGroups& groups, const ClippedQuantConfig& cfg, MatrixRef out);

}  // namespace kvlab
