#include "kvlab/quant/lowrank.hpp"

#include <Eigen/QR>
#include <algorithm>

#include "kvlab/core/error.hpp"
#include "kvlab/core/fp16.hpp"

namespace kvlab {

namespace {
using ColMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::ColMajor>;
using ColMatrixD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::ColMajor>;

// Hot loops are plain C with a fixed lane-wise accumulation order, so GCC
// vectorizes them for SSE2 or (via target_clones, chosen at load time) AVX2
// and both give bit-identical results.
#define KVLAB_SIMD_CLONES __attribute__((target_clones("avx2", "default")))

// A = R·Pᵀ for row-major R [n × d] and Pt [r × d]; A [n × r] column-major.
// Four columns of A at a time: each chunk of 8 channels of a row is loaded
// once and feeds four independent 8-lane accumulators.
KVLAB_SIMD_CLONES void project_rows(const float* R, int n, int d, const float* Pt, int r, float* A) {
  for (int i = 0; i < n; ++i) {
    const float* row = R + static_cast<std::size_t>(i) * d;
    for (int j0 = 0; j0 < r; j0 += 4) {
      const int nj = std::min(4, r - j0);
      float lane[4][8] = {};
      const int d8 = d / 8 * 8;
      for (int c = 0; c < d8; c += 8)
        for (int j = 0; j < 4; ++j) {
          const float* p = Pt + static_cast<std::size_t>(std::min(j0 + j, r - 1)) * d + c;
          for (int l = 0; l < 8; ++l) lane[j][l] += row[c + l] * p[l];
        }
      for (int c = d8; c < d; ++c)
        for (int j = 0; j < 4; ++j) lane[j][c & 7] += row[c] * Pt[static_cast<std::size_t>(std::min(j0 + j, r - 1)) * d + c];
      for (int j = 0; j < nj; ++j) {
        const float* v = lane[j];
        A[static_cast<std::size_t>(j0 + j) * n + i] = ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7]));
      }
    }
  }
}

// Pt = Aᵀ·R: Pt(j, :) = Σ_i A(i, j)·R(i, :), rows in order (elementwise axpys).
KVLAB_SIMD_CLONES void accumulate_rows(const float* R, int n, int d, const float* A, int r, float* Pt) {
  std::fill(Pt, Pt + static_cast<std::size_t>(r) * d, 0.0f);
  for (int i = 0; i < n; ++i) {
    const float* row = R + static_cast<std::size_t>(i) * d;
    for (int j = 0; j < r; ++j) {
      const float a = A[static_cast<std::size_t>(j) * n + i];
      float* p = Pt + static_cast<std::size_t>(j) * d;
      for (int c = 0; c < d; ++c) p[c] += a * row[c];
    }
  }
}

// Thin Q of a tall [n × r] matrix (n >= r), via Householder QR in double.
ColMatrix thin_q(const ColMatrix& y) {
  const ColMatrixD yd = y.cast<double>();
  Eigen::HouseholderQR<ColMatrixD> qr(yd);
  ColMatrixD q = qr.householderQ() * ColMatrixD::Identity(y.rows(), y.cols());
  return q.cast<float>();
}
}  // namespace

int lowrank_effective_rank(int n, int d, int rank) { return std::max(0, std::min({rank, n, d})); }

std::uint64_t lowrank_bits(int n, int d, int rank) {
  return 16ULL * static_cast<std::uint64_t>(n + d) * static_cast<std::uint64_t>(lowrank_effective_rank(n, d, rank));
}

LowRankFactors power_iteration(ConstMatrixRef R, int rank, int loop, Rng& rng, bool round_fp16) {
  KVLAB_ASSERT(loop >= 1);
  const int n = static_cast<int>(R.rows()), d = static_cast<int>(R.cols());
  const int r = lowrank_effective_rank(n, d, rank);
  LowRankFactors f;
  if (r == 0) {
    f.A.resize(n, 0);
    f.P.resize(d, 0);
    return f;
  }
  // Pt = Pᵀ [r × d], row-major: each R·P and Rᵀ·A below is one streaming pass
  // over R (r dot products / axpys per row), cheaper than GEMM packing for r ≪ d.
  Matrix Pt(r, d);
  for (int j = 0; j < r; ++j)
    for (int i = 0; i < d; ++i) Pt(j, i) = static_cast<float>(rng.normal());
  ColMatrix A(n, r);
  // The streaming kernels want contiguous rows; copy only a strided view.
  Matrix copy;
  const float* rows = R.data();
  if (R.outerStride() != d) {
    copy = R;
    rows = copy.data();
  }
  for (int it = 0; it < loop; ++it) {
    project_rows(rows, n, d, Pt.data(), r, A.data());
    A = thin_q(A);
    accumulate_rows(rows, n, d, A.data(), r, Pt.data());
  }
  f.A = A;
  f.P = Pt.transpose();
  if (round_fp16) {
    f.A = f.A.unaryExpr([](float v) { return round_to_fp16(v); });
    f.P = f.P.unaryExpr([](float v) { return round_to_fp16(v); });
  }
  return f;
}

void add_lowrank(const LowRankFactors& f, MatrixRef out) {
  if (f.rank() == 0) return;
  out.noalias() += f.A * f.P.transpose();
}

}  // namespace kvlab
