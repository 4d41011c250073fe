#include "kvlab/io/dump_stats.hpp"

#include <Eigen/Eigenvalues>
#include <algorithm>
#include <cmath>

namespace kvlab {

namespace {

// Eigenvalues of XᵀX ([d × d], = σ_i²), descending. Far cheaper than an SVD of
// the [T × d] matrix when T ≫ d. The Gram matrix is accumulated in float
// (fast GEMM) and solved in double.
std::vector<double> squared_singular_values(const Matrix& x) {
  const Eigen::Index d = x.cols();
  Eigen::MatrixXf gram = Eigen::MatrixXf::Zero(d, d);
  gram.selfadjointView<Eigen::Lower>().rankUpdate(x.transpose());
  const Eigen::MatrixXd g = gram.selfadjointView<Eigen::Lower>().toDenseMatrix().cast<double>();
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> solver(g, Eigen::EigenvaluesOnly);
  std::vector<double> ev(static_cast<std::size_t>(d));
  for (Eigen::Index i = 0; i < d; ++i) ev[static_cast<std::size_t>(i)] = std::max(0.0, solver.eigenvalues()(i));
  std::sort(ev.begin(), ev.end(), std::greater<>());
  return ev;
}

}  // namespace

double top_energy_fraction(const Matrix& x, int rank) {
  const std::vector<double> ev = squared_singular_values(x);
  double total = 0, top = 0;
  for (std::size_t i = 0; i < ev.size(); ++i) {
    total += ev[i];
    if (static_cast<int>(i) < rank) top += ev[i];
  }
  return total > 0 ? top / total : 0.0;
}

MatrixStats matrix_stats(const Matrix& x, double energy) {
  MatrixStats s;
  if (x.size() == 0) return s;
  s.frobenius = std::sqrt(x.cast<double>().squaredNorm());

  const Eigen::RowVectorXd mean_abs = x.cwiseAbs().cast<double>().colwise().mean();
  std::vector<double> channels(mean_abs.data(), mean_abs.data() + mean_abs.size());
  const double max_abs = *std::max_element(channels.begin(), channels.end());
  const std::size_t mid = channels.size() / 2;
  std::nth_element(channels.begin(), channels.begin() + static_cast<std::ptrdiff_t>(mid), channels.end());
  double median = channels[mid];
  if (channels.size() % 2 == 0) {
    const double lower = *std::max_element(channels.begin(), channels.begin() + static_cast<std::ptrdiff_t>(mid));
    median = 0.5 * (median + lower);
  }
  s.outlier_ratio = median > 0 ? max_abs / median : 0.0;

  const std::vector<double> ev = squared_singular_values(x);
  double total = 0;
  for (double e : ev) total += e;
  double acc = 0;
  s.effective_rank = static_cast<int>(ev.size());
  for (std::size_t i = 0; i < ev.size(); ++i) {
    acc += ev[i];
    if (acc >= energy * total) {
      s.effective_rank = static_cast<int>(i) + 1;
      break;
    }
  }
  if (total <= 0) s.effective_rank = 0;
  return s;
}

LayerStats layer_stats(const LayerData& data) {
  LayerStats out;
  out.layer = data.layer;
  const std::size_t heads = data.keys.size();
  if (heads == 0) return out;
  for (std::size_t h = 0; h < heads; ++h) {
    const MatrixStats k = matrix_stats(data.keys[h]);
    const MatrixStats v = matrix_stats(data.values[h]);
    out.key_norm += k.frobenius;
    out.value_norm += v.frobenius;
    out.key_outlier_ratio += k.outlier_ratio;
    out.value_outlier_ratio += v.outlier_ratio;
    out.key_rank90 += k.effective_rank;
    out.value_rank90 += v.effective_rank;
  }
  const double n = static_cast<double>(heads);
  out.key_norm /= n;
  out.value_norm /= n;
  out.key_outlier_ratio /= n;
  out.value_outlier_ratio /= n;
  out.key_rank90 /= n;
  out.value_rank90 /= n;
  return out;
}

}  // namespace kvlab
