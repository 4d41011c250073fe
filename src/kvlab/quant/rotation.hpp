#pragma once
// Orthogonal rotations within the head dimension, applied to every row (token)
// of a block before quantization and inverted after dequantization
// (QuaRot/SpinQuant-style incoherence processing; TurboQuant/PolarQuant's
// random preconditioning).
//
//   none:     the identity;
//   hadamard: R = H·D — D a diagonal of random signs ±1, H the block-diagonal
//             normalised Walsh–Hadamard matrix diag(H_{b1}, H_{b2}, ...) /√b
//             over power-of-two blocks b1 > b2 > ... that sum to d (the binary
//             digits of d: d = 96 → 64 + 32; a power-of-two d is one block).
//             Applied with the fast Walsh–Hadamard transform, O(d log d);
//   random:   R = Q from the QR decomposition of a d × d standard Gaussian
//             matrix, column signs fixed so diag(R_qr) > 0 (Haar-distributed).
//
// Every random choice comes from the Rng passed in — for a cache, from
// Rng::for_block(seed, layer, kv_head, purpose): a decoder regenerates R from
// the run seed, so a rotation costs 0 bits.
#include <cstdint>
#include <string>
#include <vector>

#include "kvlab/core/rng.hpp"
#include "kvlab/core/types.hpp"

namespace kvlab {

enum class RotationKind { None, Hadamard, Random };

const char* to_string(RotationKind kind);
RotationKind parse_rotation_kind(const std::string& text);  // none | hadamard | random
std::vector<std::string> rotation_kind_names();

// Rng purpose tag of the rotation of a block's keys (tensor 0) or values (1).
std::uint64_t rotation_purpose(int tensor);

// The power-of-two block sizes of the Hadamard rotation for dimension d,
// largest first (the set bits of d).
std::vector<int> hadamard_blocks(int d);

// Unnormalised in-place fast Walsh–Hadamard transform of x[0, n), n a power of
// two: x ← H_n·x with H_n in Sylvester order (H_1 = [1], H_2n = [[H, H], [H, −H]]).
void fwht(float* x, int n);

class Rotation {
 public:
  Rotation() = default;  // the identity on an unspecified dimension
  Rotation(RotationKind kind, int d, Rng& rng);
  // The rotation of tensor `tensor` (0 = keys, 1 = values) of a block.
  static Rotation for_block(RotationKind kind, int d, std::uint64_t seed, int layer, int kv_head, int tensor);

  RotationKind kind() const { return kind_; }
  int dim() const { return d_; }
  bool identity() const { return kind_ == RotationKind::None; }

  // rows ← rows·Rᵀ (each row x becomes R·x), in place; rows is [n × d].
  void apply(MatrixRef rows) const;
  // rows ← rows·R (each row y becomes Rᵀ·y): the exact inverse of apply.
  void invert(MatrixRef rows) const;
  // The explicit d × d matrix R (for tests and references).
  Matrix matrix() const;

 private:
  void hadamard_blocks_inplace(float* row) const;

  RotationKind kind_ = RotationKind::None;
  int d_ = 0;
  std::vector<float> signs_;  // hadamard: the diagonal of D
  std::vector<int> blocks_;   // hadamard: block sizes, largest first
  Matrix q_;                  // random: R, d × d
};

}  // namespace kvlab
