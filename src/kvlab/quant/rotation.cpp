#include "kvlab/quant/rotation.hpp"

#include <Eigen/QR>
#include <cmath>

#include "kvlab/core/error.hpp"

namespace kvlab {

const char* to_string(RotationKind kind) {
  switch (kind) {
    case RotationKind::None: return "none";
    case RotationKind::Hadamard: return "hadamard";
    case RotationKind::Random: return "random";
  }
  return "none";
}

RotationKind parse_rotation_kind(const std::string& text) {
  if (text == "none") return RotationKind::None;
  if (text == "hadamard") return RotationKind::Hadamard;
  if (text == "random") return RotationKind::Random;
  fail("unknown rotation '{}' (expected none, hadamard or random)", text);
}

std::vector<std::string> rotation_kind_names() { return {"none", "hadamard", "random"}; }

std::uint64_t rotation_purpose(int tensor) { return 0x524F544154450000ULL ^ static_cast<std::uint64_t>(tensor & 1); }

std::vector<int> hadamard_blocks(int d) {
  std::vector<int> out;
  for (int bit = 30; bit >= 0; --bit)
    if (d & (1 << bit)) out.push_back(1 << bit);
  return out;
}

void fwht(float* x, int n) {
  KVLAB_ASSERT(n > 0 && (n & (n - 1)) == 0);
  for (int h = 1; h < n; h *= 2)
    for (int i = 0; i < n; i += 2 * h)
      for (int j = i; j < i + h; ++j) {
        const float a = x[j], b = x[j + h];
        x[j] = a + b;
        x[j + h] = a - b;
      }
}

Rotation::Rotation(RotationKind kind, int d, Rng& rng) : kind_(kind), d_(d) {
  KVLAB_ASSERT(d >= 1);
  if (kind == RotationKind::Hadamard) {
    signs_.resize(static_cast<std::size_t>(d));
    for (auto& s : signs_) s = (rng.next_u64() >> 63) ? -1.0f : 1.0f;
    blocks_ = hadamard_blocks(d);
  } else if (kind == RotationKind::Random) {
    MatrixD g(d, d);
    for (int i = 0; i < d; ++i)
      for (int j = 0; j < d; ++j) g(i, j) = rng.normal();
    const Eigen::HouseholderQR<MatrixD> qr(g);
    MatrixD q = qr.householderQ();
    const MatrixD r = qr.matrixQR();
    for (int j = 0; j < d; ++j)
      if (r(j, j) < 0) q.col(j) *= -1.0;  // unique Q with a positive diagonal in R: Haar measure
    q_ = q.cast<float>();
  }
}

Rotation Rotation::for_block(RotationKind kind, int d, std::uint64_t seed, int layer, int kv_head, int tensor) {
  Rng rng = Rng::for_block(seed, layer, kv_head, rotation_purpose(tensor));
  return Rotation(kind, d, rng);
}

void Rotation::hadamard_blocks_inplace(float* row) const {
  int start = 0;
  for (int b : blocks_) {
    fwht(row + start, b);
    const float scale = 1.0f / std::sqrt(static_cast<float>(b));
    for (int i = start; i < start + b; ++i) row[i] *= scale;
    start += b;
  }
}

void Rotation::apply(MatrixRef rows) const {
  if (kind_ == RotationKind::None) return;
  KVLAB_ASSERT(rows.cols() == d_);
  if (kind_ == RotationKind::Random) {
    // Row by row (matrix-vector products): a token's result does not depend on
    // how many tokens are rotated together.
    RowVector tmp(d_);
    for (int r = 0; r < rows.rows(); ++r) {
      tmp.noalias() = rows.row(r) * q_.transpose();
      rows.row(r) = tmp;
    }
    return;
  }
  for (int r = 0; r < rows.rows(); ++r) {
    float* row = rows.row(r).data();
    for (int i = 0; i < d_; ++i) row[i] *= signs_[i];
    hadamard_blocks_inplace(row);
  }
}

void Rotation::invert(MatrixRef rows) const {
  if (kind_ == RotationKind::None) return;
  KVLAB_ASSERT(rows.cols() == d_);
  if (kind_ == RotationKind::Random) {
    RowVector tmp(d_);
    for (int r = 0; r < rows.rows(); ++r) {
      tmp.noalias() = rows.row(r) * q_;
      rows.row(r) = tmp;
    }
    return;
  }
  for (int r = 0; r < rows.rows(); ++r) {
    float* row = rows.row(r).data();
    hadamard_blocks_inplace(row);  // each normalised block is symmetric and its own inverse
    for (int i = 0; i < d_; ++i) row[i] *= signs_[i];
  }
}

Matrix Rotation::matrix() const {
  const int d = d_ > 0 ? d_ : 1;
  // Column j of R is R·e_j: rotate the rows of the identity (rows·Rᵀ = Rᵀ) and transpose.
  Matrix m = Matrix::Identity(d, d);
  apply(m);
  return m.transpose();
}

}  // namespace kvlab
