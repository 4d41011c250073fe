#pragma once
// The b-bit asymmetric min-max group quantizer (REFERENCE: "Building blocks").
//
// For a group x: mn = min x, mx = max x, s = (mx - mn) / (2^b - 1). Scale and
// zero point are stored as FP16, so both are rounded to FP16 first and the codes
// are computed with the rounded values: q = clamp(round((x - mn16) / s16), 0,
// 2^b - 1), x̂ = q·s16 + mn16. round() is round-half-to-even. If s16 == 0 (a
// constant group, or a range below FP16 resolution) every element is mn16.
//
// Groups:
//   per-token,   group G: G consecutive channels of one token (row);
//   per-channel, group G: G consecutive tokens of one channel (column);
//   group 0 = the whole axis (the entire row, or the entire column of the block).
// A trailing partial group (d % G or n % G) is a group of its own.
#include <cstdint>
#include <string>

#include "kvlab/core/bit_count.hpp"
#include "kvlab/core/types.hpp"

namespace kvlab {

enum class QuantAxis { PerToken, PerChannel };

const char* to_string(QuantAxis axis);
QuantAxis parse_quant_axis(const std::string& text);  // "token" | "channel"

struct QuantConfig {
  int bits = 2;
  QuantAxis axis = QuantAxis::PerToken;
  int group = 0;  // 0 = whole axis
};

// Optional exclusion mask, same shape as the block ([n × d], row-major): 1 marks
// an element stored elsewhere (an outlier). Excluded elements take no part in
// their group's min/max and reconstruct as 0 here; the caller adds them back.
using ElementMask = Eigen::Matrix<std::uint8_t, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Number of groups for an [n × d] block.
std::int64_t quant_group_count(int n, int d, const QuantConfig& cfg);

// Closed-form size of a quantized [n × d] block: codes = b·n·d (dense packed
// codes, one slot per element, also for excluded elements), metadata = 32 bits
// (FP16 scale + FP16 zero point) per group.
BitCount quant_bits(int n, int d, const QuantConfig& cfg);

// Quantizes x [n × d] and writes the reconstruction x̂ into out [n × d]
// (out may alias x). Returns quant_bits(n, d, cfg).
BitCount fake_quantize(ConstMatrixRef x, const QuantConfig& cfg, MatrixRef out,
                       const ElementMask* exclude = nullptr);

// GEAR's backbone in one pass (out must not alias x): out = D̂ + S, i.e.
// fake_quantize(x, cfg, out, outliers) followed by add_outliers for the
// extract_outliers set behind `outliers` (each outlier becomes 0 + its FP16
// value), and residual = x − out, resized to [n × d]. Returns quant_bits.
BitCount quantize_with_residual(ConstMatrixRef x, const QuantConfig& cfg, MatrixRef out, Matrix& residual,
                                const ElementMask* outliers = nullptr);

}  // namespace kvlab
