#pragma once
// PolarQuant (Han, Kacham, Karbasi, Mirrokni, Zandieh 2025, "PolarQuant:
// Quantizing KV Caches with Polar Transformation", arXiv:2502.02617): a
// rotated vector y ∈ R^d is written in recursive polar coordinates and its
// angles are quantized with per-level codebooks.
//
// Polar transform with L levels (d divisible by 2^L), 0-based indices:
//   level 1:   ψ¹_j = atan2(y_{2j+1}, y_{2j}) ∈ [0, 2π),  r¹_j = ‖(y_{2j}, y_{2j+1})‖,  j < d/2;
//   level ℓ≥2: ψˡ_j = atan2(rˡ⁻¹_{2j+1}, rˡ⁻¹_{2j}) ∈ [0, π/2], rˡ_j = ‖(rˡ⁻¹_{2j}, rˡ⁻¹_{2j+1})‖;
//   kept: the angles of every level and the d/2^L radii of level L (each the
//   norm of a block of 2^L coordinates). The inverse unfolds r = (r cos ψ, r sin ψ).
// For a Gaussian (or uniformly rotated) y the angles are independent: level 1
// uniform on [0, 2π), level ℓ ≥ 2 with density ∝ sin^(2^(ℓ−1) − 1)(2ψ) on
// [0, π/2] — so fixed ("offline") codebooks need no per-vector scale.
// Quantization: every angle → the nearest codebook angle of its level (level
// 1 on the circle); radii are stored as FP16.
#include <vector>

#include "kvlab/core/bit_count.hpp"
#include "kvlab/core/types.hpp"
#include "kvlab/quant/rotation.hpp"

namespace kvlab {

struct PolarConfig {
  int levels = 4;      // L
  int angle_bits = 4;  // level 1
  int deep_bits = 2;   // levels 2..L
  int bits_at(int level) const { return level == 1 ? angle_bits : deep_bits; }
};

// Angle range of a level: 2π for level 1, π/2 above.
double polar_angle_range(int level);

// The offline codebook of a level: level 1, 2^bits uniform centroids
// (j + 0.5)·2π/2^bits (optimal for the uniform angle); level ℓ ≥ 2, the
// Lloyd–Max quantizer of the sin^(2^(ℓ−1) − 1)(2ψ) density. Sorted; computed
// once per (level, bits) and kept (thread-safe).
const std::vector<float>& polar_offline_codebook(int level, int bits);

// Angles and radii of rows of y ([n × d]); angles[ℓ − 1] is [n × d/2^ℓ].
struct PolarCoords {
  std::vector<Matrix> angles;
  Matrix radii;  // [n × d/2^L]
};
PolarCoords polar_transform(ConstMatrixRef y, int levels);
Matrix polar_inverse(const PolarCoords& c);

// Nearest of sorted angles on a circle of circumference `period` (ties: the lower index).
int nearest_circular(const std::vector<float>& sorted, float x, float period);

class PolarQuantizer {
 public:
  // codebooks[ℓ − 1]: sorted angles of level ℓ (2^bits_at(ℓ) of them).
  PolarQuantizer(PolarConfig cfg, Rotation rotation, std::vector<std::vector<float>> codebooks);
  // out = Rᵀ·polar_inverse(quantized polar_transform(R·x)) per row (out may not alias x).
  void quantize(ConstMatrixRef x, MatrixRef out) const;
  // codes = Σ_ℓ (d/2^ℓ)·b_ℓ, metadata = 16·d/2^L (FP16 radii).
  static BitCount vector_bits(int d, const PolarConfig& cfg);

 private:
  PolarConfig cfg_;
  Rotation rotation_;
  std::vector<std::vector<float>> codebooks_;
};

}  // namespace kvlab
