#include "kvlab/quant/lowrank.hpp"

#include <Eigen/QR>
#include <algorithm>

#include "kvlab/core/error.hpp"
#include "kvlab/core/fp16.hpp"
#include "kvlab/core/simd.hpp"

namespace kvlab {

namespace {
using ColMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::ColMajor>;
using ColMatrixD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::ColMajor>;

// The hot loops use fixed-width vectors (core/simd.hpp) with a fixed lane
// order, so the SSE2 build and the AVX2 clone give bit-identical results.
using simd::f4;
using simd::f8;

// A = R·Pᵀ for row-major R [n × d] and Pt [r × d]; A [n × r] column-major.
// Element (i, j) is the dot product of row i and Pt row j in eight lanes
// (lane l sums channels c ≡ l mod 8 in order), reduced as simd::reduce4.
// Four columns of A at a time, accumulators in registers; a short last group
// of columns repeats Pt's last row (results discarded).
KVLAB_SIMD_CLONES void project_rows(const float* R, int n, int d, const float* Pt, int r, float* A) {
  const int d8 = d / 8 * 8;
  for (int j0 = 0; j0 < r; j0 += 4) {
    const int nj = std::min(4, r - j0);
    const float* p[4];
    for (int j = 0; j < 4; ++j) p[j] = Pt + static_cast<std::size_t>(std::min(j0 + j, r - 1)) * d;
    for (int i = 0; i < n; ++i) {
      const float* row = R + static_cast<std::size_t>(i) * d;
      f8 a0{}, a1{}, a2{}, a3{};
      for (int c = 0; c < d8; c += 8) {
        const f8 x = simd::load8(row + c);
        a0 += x * simd::load8(p[0] + c);
        a1 += x * simd::load8(p[1] + c);
        a2 += x * simd::load8(p[2] + c);
        a3 += x * simd::load8(p[3] + c);
      }
      for (int c = d8; c < d; ++c) {
        a0[c & 7] += row[c] * p[0][c];
        a1[c & 7] += row[c] * p[1][c];
        a2[c & 7] += row[c] * p[2][c];
        a3[c & 7] += row[c] * p[3][c];
      }
      const f4 dots = simd::reduce4(a0, a1, a2, a3);
      for (int j = 0; j < nj; ++j) A[static_cast<std::size_t>(j0 + j) * n + i] = dots[j];
    }
  }
}

// Pt = Aᵀ·R: Pt(j, c) = Σ_i A(i, j)·R(i, c), summed over rows in order from 0.
// Rows stream in groups of four: each Pt chunk is loaded once per group and
// takes the four rows' terms in row order before it is stored back.
KVLAB_SIMD_CLONES void accumulate_rows(const float* R, int n, int d, const float* A, int r, float* Pt) {
  std::fill(Pt, Pt + static_cast<std::size_t>(r) * d, 0.0f);
  const int d8 = d / 8 * 8;
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    const float* x0 = R + static_cast<std::size_t>(i) * d;
    const float *x1 = x0 + d, *x2 = x1 + d, *x3 = x2 + d;
    for (int j = 0; j < r; ++j) {
      const float* a = A + static_cast<std::size_t>(j) * n + i;
      const float w0 = a[0], w1 = a[1], w2 = a[2], w3 = a[3];
      float* p = Pt + static_cast<std::size_t>(j) * d;
      for (int c = 0; c < d8; c += 8) {
        f8 s = simd::load8(p + c);
        s += w0 * simd::load8(x0 + c);  // scalar × vector: a broadcast
        s += w1 * simd::load8(x1 + c);
        s += w2 * simd::load8(x2 + c);
        s += w3 * simd::load8(x3 + c);
        simd::store8(p + c, s);
      }
      for (int c = d8; c < d; ++c) p[c] = (((p[c] + w0 * x0[c]) + w1 * x1[c]) + w2 * x2[c]) + w3 * x3[c];
    }
  }
  for (; i < n; ++i) {
    const float* x = R + static_cast<std::size_t>(i) * d;
    for (int j = 0; j < r; ++j) {
      const float w = A[static_cast<std::size_t>(j) * n + i];
      float* p = Pt + static_cast<std::size_t>(j) * d;
      for (int c = 0; c < d; ++c) p[c] += w * x[c];
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
