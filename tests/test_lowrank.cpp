#include <Eigen/QR>
#include <Eigen/SVD>
#include <catch2/catch.hpp>
#include <cmath>
#include <vector>

#include "kvlab/core/fp16.hpp"
#include "kvlab/core/rng.hpp"
#include "kvlab/quant/lowrank.hpp"
#include "kvlab/quant/lowrank_kernels.hpp"

using namespace kvlab;

namespace {
Matrix gaussian(int n, int d, Rng& rng) {
  Matrix x(n, d);
  for (int r = 0; r < n; ++r)
    for (int c = 0; c < d; ++c) x(r, c) = static_cast<float>(rng.normal());
  return x;
}
}  // namespace

TEST_CASE("lowrank: power iteration recovers a planted rank-r matrix", "[lowrank]") {
  Rng rng(11);
  const int n = 300, d = 64, r = 4;
  const Matrix X = gaussian(n, r, rng) * gaussian(r, d, rng);
  Rng fit_rng(5);
  const LowRankFactors f = power_iteration(X, r, 3, fit_rng, /*round_fp16=*/false);
  REQUIRE(f.A.rows() == n);
  REQUIRE(f.P.rows() == d);
  const Matrix L = f.A * f.P.transpose();
  CHECK((X - L).norm() / X.norm() < 1e-5);
  // With FP16 factors the fit is within FP16 resolution.
  Rng fit_rng2(5);
  const LowRankFactors h = power_iteration(X, r, 3, fit_rng2, true);
  CHECK((X - h.A * h.P.transpose()).norm() / X.norm() < 2e-3);
  CHECK(lowrank_bits(n, d, r) == 16ULL * (n + d) * r);
}

TEST_CASE("lowrank: matches truncated SVD on a matrix with a spectral gap", "[lowrank]") {
  Rng rng(21);
  const int n = 256, d = 64, r = 4;
  // Strong rank-4 signal plus small noise: spectral gap σ_4 ≫ σ_5.
  const Matrix X = 10.0f * gaussian(n, r, rng) * gaussian(r, d, rng) + 0.1f * gaussian(n, d, rng);
  Rng fit_rng(1);
  const LowRankFactors f = power_iteration(X, r, 10, fit_rng, false);
  const Matrix L = f.A * f.P.transpose();
  Eigen::BDCSVD<Eigen::MatrixXf> svd(Eigen::MatrixXf(X), Eigen::ComputeThinU | Eigen::ComputeThinV);
  const Eigen::MatrixXf best = svd.matrixU().leftCols(r) * svd.singularValues().head(r).asDiagonal() *
                               svd.matrixV().leftCols(r).transpose();
  CHECK((Eigen::MatrixXf(L) - best).norm() / best.norm() < 1e-4);
  const double err_pi = (X - L).norm(), err_svd = (Eigen::MatrixXf(X) - best).norm();
  CHECK(err_pi <= err_svd * (1 + 1e-4));
}

TEST_CASE("lowrank: deterministic for a given stream, rank capped by shape", "[lowrank]") {
  Rng rng(3);
  const Matrix X = gaussian(40, 16, rng);
  Rng a(9), b(9), c(10);
  const auto fa = power_iteration(X, 2, 3, a), fb = power_iteration(X, 2, 3, b), fc = power_iteration(X, 2, 3, c);
  CHECK(fa.A == fb.A);
  CHECK(fa.P == fb.P);
  CHECK(fa.P != fc.P);
  Rng s(1);
  CHECK(power_iteration(X.topRows(3), 8, 2, s).rank() == 3);
  CHECK(lowrank_bits(3, 16, 8) == 16ULL * 19 * 3);
}

namespace {
using ColMatrixD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::ColMajor>;

// Plain loops in the order lowrank.hpp documents; thin Q as in lowrank.cpp.
LowRankFactors reference_power_iteration(const Matrix& R, int rank, int loop, Rng& rng) {
  const int n = static_cast<int>(R.rows()), d = static_cast<int>(R.cols());
  const int r = lowrank_effective_rank(n, d, rank);
  Matrix P(d, r);
  for (int j = 0; j < r; ++j)
    for (int c = 0; c < d; ++c) P(c, j) = static_cast<float>(rng.normal());
  Matrix A(n, r);
  for (int it = 0; it < loop; ++it) {
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < r; ++j) {
        float lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (int c = 0; c < d; ++c) lane[c % 8] += R(i, c) * P(c, j);
        A(i, j) = ((lane[0] + lane[4]) + (lane[1] + lane[5])) + ((lane[2] + lane[6]) + (lane[3] + lane[7]));
      }
    const ColMatrixD y = A.cast<double>();
    Eigen::HouseholderQR<ColMatrixD> qr(y);
    const ColMatrixD q = qr.householderQ() * ColMatrixD::Identity(n, r);
    A = q.cast<float>();
    for (int j = 0; j < r; ++j)
      for (int c = 0; c < d; ++c) {
        float sum = 0.0f;
        for (int i = 0; i < n; ++i) sum += R(i, c) * A(i, j);
        P(c, j) = sum;
      }
  }
  return {A, P};
}
}  // namespace

TEST_CASE("lowrank: the blocked kernels equal plain loops in the documented order, bit for bit", "[lowrank]") {
  // Shapes with rows not a multiple of 4, channels not a multiple of 8, ranks
  // not a multiple of 4, and a strided view.
  struct Shape {
    int n, d, r;
  };
  for (const Shape s : {Shape{257, 128, 4}, Shape{70, 45, 3}, Shape{33, 8, 6}, Shape{9, 130, 5}, Shape{64, 7, 1}}) {
    Rng data(static_cast<std::uint64_t>(s.n * 1000 + s.d));
    const Matrix R = gaussian(s.n, s.d, data);
    for (int loop : {1, 3}) {
      Rng a(17), b(17);
      const LowRankFactors got = power_iteration(R, s.r, loop, a, /*round_fp16=*/false);
      const LowRankFactors ref = reference_power_iteration(R, s.r, loop, b);
      INFO("n " << s.n << " d " << s.d << " r " << s.r << " loop " << loop);
      CHECK(got.A == ref.A);
      CHECK(got.P == ref.P);
    }
  }
  // A strided view (a block of a wider matrix) gives the same factors as a copy.
  Rng data(5);
  const Matrix wide = gaussian(100, 40, data);
  Rng a(3), b(3);
  const LowRankFactors view = power_iteration(wide.leftCols(29), 4, 2, a);
  const LowRankFactors copy = power_iteration(Matrix(wide.leftCols(29)), 4, 2, b);
  CHECK(view.A == copy.A);
  CHECK(view.P == copy.P);
}

TEST_CASE("lowrank kernels: thin Q, A·Pᵀ update and FP16 rounding against plain references", "[lowrank]") {
  using ColMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::ColMajor>;
  Rng rng(41);
  struct Shape {
    int n, r;
  };
  for (const Shape s : {Shape{4096, 4}, Shape{130, 7}, Shape{9, 9}, Shape{5, 1}}) {
    ColMatrix y(s.n, s.r);
    for (int i = 0; i < y.size(); ++i) y.data()[i] = static_cast<float>(rng.normal());
    if (s.r > 2) y.col(2) = y.col(0) * 3.0f + y.col(1) * 1e-3f;  // nearly dependent column
    // Eigen's Householder QR in double: same reflections, other rounding.
    const ColMatrixD yd = y.cast<double>();
    Eigen::HouseholderQR<ColMatrixD> qr(yd);
    const ColMatrix eigen_q = (qr.householderQ() * ColMatrixD::Identity(s.n, s.r)).cast<float>();
    ColMatrix q = y;
    lowrank_kernels::thin_q(q.data(), s.n, s.r);
    INFO("n " << s.n << " r " << s.r);
    CHECK((q - eigen_q).cwiseAbs().maxCoeff() <= 1e-6f);
    CHECK((q.transpose() * q - ColMatrix::Identity(s.r, s.r)).cwiseAbs().maxCoeff() < 1e-5f);
  }
  // A column that is already zero below its pivot takes no reflection.
  ColMatrix e = ColMatrix::Zero(6, 2);
  e(0, 0) = 2.0f;
  e(1, 1) = -3.0f;
  e(4, 1) = 4.0f;
  ColMatrix eq = e;
  lowrank_kernels::thin_q(eq.data(), 6, 2);
  CHECK((eq.transpose() * eq - ColMatrix::Identity(2, 2)).cwiseAbs().maxCoeff() < 1e-6f);
  CHECK(std::abs(eq(0, 0)) == 1.0f);

  // out += A·Pᵀ: plain loops in the documented order.
  for (const Shape s : {Shape{37, 4}, Shape{8, 1}, Shape{20, 9}}) {
    const int d = 45;
    Matrix A(s.n, s.r), Pt(s.r, d), out(s.n, d + 3);
    for (int i = 0; i < A.size(); ++i) A.data()[i] = static_cast<float>(rng.normal());
    for (int i = 0; i < Pt.size(); ++i) Pt.data()[i] = static_cast<float>(rng.normal());
    for (int i = 0; i < out.size(); ++i) out.data()[i] = static_cast<float>(rng.normal());
    Matrix want = out;
    for (int i = 0; i < s.n; ++i)
      for (int c = 0; c < d; ++c) {
        float acc = 0.0f;
        for (int j = 0; j < s.r; ++j) acc += A(i, j) * Pt(j, c);
        want(i, c) += acc;
      }
    lowrank_kernels::add_product(A.data(), s.n, s.r, Pt.data(), d, out.data(), out.outerStride());
    CHECK(out == want);  // the 3 extra columns are untouched as well
  }
  // Eigen's GEMM (what add_lowrank used before) sums in the same order for r <= 8.
  for (int r = 1; r <= 8; ++r) {
    LowRankFactors f{gaussian(64, r, rng), gaussian(40, r, rng)};
    Matrix base = gaussian(64, 40, rng), mine = base;
    base.noalias() += f.A * f.P.transpose();
    add_lowrank(f, mine);
    CHECK(mine == base);
  }

  std::vector<float> v;
  for (int i = 0; i < 1003; ++i) v.push_back(static_cast<float>(rng.normal() * std::pow(10.0, i % 13 - 8)));
  std::vector<float> w = v;
  lowrank_kernels::round_to_fp16(w.data(), static_cast<Eigen::Index>(w.size()));
  for (std::size_t i = 0; i < v.size(); ++i) CHECK(w[i] == round_to_fp16(v[i]));
}
