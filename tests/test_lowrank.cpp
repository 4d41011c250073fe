#include <Eigen/QR>
#include <Eigen/SVD>
#include <catch2/catch.hpp>

#include "kvlab/core/rng.hpp"
#include "kvlab/quant/lowrank.hpp"

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
