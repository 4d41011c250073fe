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
