#include "kvlab/quant/lowrank.hpp"

#include <Eigen/QR>
#include <algorithm>

#include "kvlab/core/error.hpp"
#include "kvlab/core/fp16.hpp"

namespace kvlab {

namespace {
using ColMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::ColMajor>;
using ColMatrixD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::ColMajor>;

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
  ColMatrix P(d, r);
  for (int j = 0; j < r; ++j)
    for (int i = 0; i < d; ++i) P(i, j) = static_cast<float>(rng.normal());
  ColMatrix A(n, r);
  for (int it = 0; it < loop; ++it) {
    A.noalias() = R * P;
    A = thin_q(A);
    P.noalias() = R.transpose() * A;
  }
  f.A = A;
  f.P = P;
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
