#include "kvlab/quant/lowrank.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kvlab/core/error.hpp"
#include "kvlab/core/fp16.hpp"
#include "kvlab/core/simd.hpp"
#include "kvlab/quant/lowrank_kernels.hpp"

namespace kvlab {

namespace lowrank_kernels {

// The hot loops use fixed-width vectors (core/simd.hpp) with a fixed lane
// order, so the SSE2 build and the AVX2 clone give bit-identical results.
using simd::d4;
using simd::f4;
using simd::f8;

// A = R·Pᵀ for row-major R [n × d] and Pt [r × d]; A [n × r] column-major.
// Element (i, j) is the dot product of row i and Pt row j in eight lanes
// (lane l sums channels c ≡ l mod 8 in order), reduced as simd::reduce4.
// Four columns of A at a time, accumulators in registers; a short last group
// of columns repeats Pt's last row (results discarded). Rows run last to
// first: the pass before (the residual's construction, or accumulate_rows)
// ended at the last rows, which are then still in cache (each row's result
// does not depend on the order).
KVLAB_SIMD_CLONES void project_rows(const float* R, int n, int d, const float* Pt, int r, float* A) {
  const int d8 = d / 8 * 8;
  for (int j0 = 0; j0 < r; j0 += 4) {
    const int nj = std::min(4, r - j0);
    const float* p[4];
    for (int j = 0; j < 4; ++j) p[j] = Pt + static_cast<std::size_t>(std::min(j0 + j, r - 1)) * d;
    for (int i = n - 1; i >= 0; --i) {
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

// Pt = Aᵀ·R: Pt(j, c) = Σ_i A(i, j)·R(i, c), summed over rows in order from 0
// (so this pass starts where project_rows ended). Rows stream in groups of
// four: each Pt chunk is loaded once per group and takes the four rows' terms
// in row order before it is stored back.
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

namespace {
// Σ x[i]·y[i] over m doubles, in four lanes, reduced (l0 + l2) + (l1 + l3).
KVLAB_SIMD_INLINE double dot(const double* x, const double* y, int m) {
  d4 acc{};
  int i = 0;
  for (; i + 4 <= m; i += 4) acc += simd::load4(x + i) * simd::load4(y + i);
  for (; i < m; ++i) acc[i & 3] += x[i] * y[i];
  return (acc[0] + acc[2]) + (acc[1] + acc[3]);
}
// y[i] -= a·x[i] over m doubles.
KVLAB_SIMD_INLINE void sub_scaled(double* y, double a, const double* x, int m) {
  int i = 0;
  for (; i + 4 <= m; i += 4) simd::store4(y + i, simd::load4(y + i) - a * simd::load4(x + i));
  for (; i < m; ++i) y[i] -= a * x[i];
}
// Applies H = I − tau·[1; v][1; v]ᵀ to x (length m + 1): Eigen's
// applyHouseholderOnTheLeft for one column.
KVLAB_SIMD_INLINE void reflect(double* x, const double* v, double tau, int m) {
  const double t = x[0] + dot(v, x + 1, m);
  x[0] -= tau * t;
  sub_scaled(x + 1, tau * t, v, m);
}
}  // namespace

KVLAB_SIMD_CLONES void thin_q(float* A, int n, int r) {
  std::vector<double> y(static_cast<std::size_t>(n) * r), q(y.size(), 0.0), tau(static_cast<std::size_t>(r));
  for (std::size_t i = 0; i < y.size(); ++i) y[i] = A[i];
  // Factor: column k's tail becomes the essential part v_k of reflector k.
  for (int k = 0; k < r; ++k) {
    double* col = y.data() + static_cast<std::size_t>(k) * n + k;
    const int m = n - k - 1;
    const double c0 = col[0], tail_sq = dot(col + 1, col + 1, m);
    double beta = c0;
    tau[k] = 0.0;
    if (tail_sq <= std::numeric_limits<double>::min()) {  // already zero below the pivot: no reflection
      std::fill(col + 1, col + 1 + m, 0.0);
    } else {
      beta = std::sqrt(c0 * c0 + tail_sq);
      if (c0 >= 0.0) beta = -beta;
      const double denom = c0 - beta;
      for (int i = 1; i <= m; ++i) col[i] /= denom;
      tau[k] = (beta - c0) / beta;
      for (int j = k + 1; j < r; ++j) reflect(y.data() + static_cast<std::size_t>(j) * n + k, col + 1, tau[k], m);
    }
    col[0] = beta;
  }
  // Q = H_0·…·H_{r−1}·[I; 0], applied right to left; H_k leaves columns < k alone.
  for (int j = 0; j < r; ++j) q[static_cast<std::size_t>(j) * n + j] = 1.0;
  for (int k = r - 1; k >= 0; --k) {
    if (tau[k] == 0.0) continue;
    const double* v = y.data() + static_cast<std::size_t>(k) * n + k + 1;
    for (int j = k; j < r; ++j) reflect(q.data() + static_cast<std::size_t>(j) * n + k, v, tau[k], n - k - 1);
  }
  for (std::size_t i = 0; i < q.size(); ++i) A[i] = static_cast<float>(q[i]);
}

KVLAB_SIMD_CLONES void add_product(const float* A, int n, int r, const float* Pt, int d, float* out,
                                   Eigen::Index ld_out) {
  const int d8 = d / 8 * 8;
  for (int i = 0; i < n; ++i) {
    const float* a = A + static_cast<std::size_t>(i) * r;
    float* o = out + i * ld_out;
    for (int c = 0; c < d8; c += 8) {
      f8 acc{};
      for (int j = 0; j < r; ++j) acc += a[j] * simd::load8(Pt + static_cast<std::size_t>(j) * d + c);
      simd::store8(o + c, simd::load8(o + c) + acc);
    }
    for (int c = d8; c < d; ++c) {
      float acc = 0.0f;
      for (int j = 0; j < r; ++j) acc += a[j] * Pt[static_cast<std::size_t>(j) * d + c];
      o[c] += acc;
    }
  }
}

KVLAB_SIMD_CLONES void round_to_fp16(float* values, Eigen::Index count) {
  Eigen::Index i = 0;
  for (; i + 8 <= count; i += 8) simd::store8(values + i, simd::round8_to_fp16(simd::load8(values + i)));
  for (; i < count; ++i) values[i] = kvlab::round_to_fp16(values[i]);
}

}  // namespace lowrank_kernels

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
  Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::ColMajor> A(n, r);
  // The streaming kernels want contiguous rows; copy only a strided view.
  Matrix copy;
  const float* rows = R.data();
  if (R.outerStride() != d) {
    copy = R;
    rows = copy.data();
  }
  for (int it = 0; it < loop; ++it) {
    lowrank_kernels::project_rows(rows, n, d, Pt.data(), r, A.data());
    lowrank_kernels::thin_q(A.data(), n, r);
    lowrank_kernels::accumulate_rows(rows, n, d, A.data(), r, Pt.data());
  }
  f.A = A;
  f.P = Pt.transpose();
  if (round_fp16) {
    lowrank_kernels::round_to_fp16(f.A.data(), f.A.size());
    lowrank_kernels::round_to_fp16(f.P.data(), f.P.size());
  }
  return f;
}

void add_lowrank(const LowRankFactors& f, MatrixRef out) {
  KVLAB_ASSERT(out.rows() == f.A.rows() && out.cols() == f.P.rows());
  if (f.rank() == 0) return;
  const Matrix Pt = f.P.transpose();
  lowrank_kernels::add_product(f.A.data(), static_cast<int>(f.A.rows()), f.rank(), Pt.data(),
                               static_cast<int>(Pt.cols()), out.data(), out.outerStride());
}

}  // namespace kvlab
