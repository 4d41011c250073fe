#pragma once
// TurboQuant's two quantizers (Zandieh et al. 2025, "TurboQuant: Online Vector
// Quantization with Near-optimal Distortion Rate"), per vector (one token row):
//
// TurboQuant_mse with b bits:  n = ‖x‖ (stored FP16), u = x / n, y = R·u;
//   each coordinate y_j → the nearest of 2^b centroids c, the Lloyd–Max
//   quantizer of one coordinate of a uniformly random unit vector of R^d
//   (density ∝ (1 − t²)^((d−3)/2) on [−1, 1], which is what y_j follows after
//   a random rotation); x̂ = fp16(n) · Rᵀ·c[idx]. b = 0: x̂ = 0, nothing stored.
// TurboQuant_prod with b ≥ 1 bits: x̂_mse from TurboQuant_mse with b − 1 bits,
//   r = x − x̂_mse, γ = fp16(‖r‖), and a 1-bit QJL sketch of r with a d × d
//   standard Gaussian S: x̃ = x̂_mse + √(π/2)/d · γ · Sᵀ·sign(S·r)
//   (sign(0) = +1). E_S[⟨q, x̃⟩] = ⟨q, x̂_mse⟩ + (γ/‖r‖)·⟨q, r⟩, i.e. ⟨q, x⟩ up
//   to the FP16 rounding of γ: an unbiased inner-product estimator.
//
// Codebooks depend only on (d, b) and R, S come from the run seed: they cost 0
// bits. Per vector: mse = b·d code bits + 16 (norm, if b > 0); prod =
// (b − 1)·d + d code bits + 16 (γ) + 16 (norm, if b > 1).
#include <vector>

#include "kvlab/core/bit_count.hpp"
#include "kvlab/core/rng.hpp"
#include "kvlab/quant/rotation.hpp"

namespace kvlab {

// The 2^bits sorted Lloyd–Max centroids for one coordinate of a uniform random
// unit vector of R^d (d ≥ 2, 1 ≤ bits ≤ 8). Computed once per (d, bits) and
// kept for the process (thread-safe).
const std::vector<float>& sphere_coordinate_codebook(int d, int bits);

// A d × d standard Gaussian QJL matrix drawn row by row from rng.
Matrix qjl_gaussian(int d, Rng& rng);

class TurboMse {
 public:
  TurboMse(int bits, Rotation rotation);
  int bits() const { return bits_; }
  // out[i] = x̂ of row x[i] (out may not alias x).
  void quantize(ConstMatrixRef x, MatrixRef out) const;
  static BitCount vector_bits(int d, int bits);

 private:
  int bits_;
  Rotation rotation_;
  const std::vector<float>* codebook_ = nullptr;
};

class TurboProd {
 public:
  TurboProd(int bits, Rotation rotation, Matrix sketch);
  // out[i] = x̃ of row x[i] (out may not alias x).
  void quantize(ConstMatrixRef x, MatrixRef out) const;
  static BitCount vector_bits(int d, int bits);

 private:
  TurboMse mse_;
  Matrix s_;  // d × d
};

}  // namespace kvlab
