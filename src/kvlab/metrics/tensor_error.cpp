#include "kvlab/metrics/tensor_error.hpp"

#include <algorithm>

namespace kvlab {

TensorError tensor_error(ConstMatrixRef x, ConstMatrixRef x_hat) {
  TensorError e;
  const Eigen::Index rows = x.rows(), cols = x.cols();
  for (Eigen::Index r = 0; r < rows; ++r) {
    const float* a = x.row(r).data();
    const float* b = x_hat.row(r).data();
    double err = 0.0, norm = 0.0;
    float mx = 0.0f;
    for (Eigen::Index c = 0; c < cols; ++c) {
      const float diff = a[c] - b[c];
      err += static_cast<double>(diff) * diff;
      norm += static_cast<double>(a[c]) * a[c];
      mx = std::max(mx, std::abs(diff));
    }
    e.sq_err += err;
    e.sq_norm += norm;
    e.max_abs = std::max(e.max_abs, static_cast<double>(mx));
  }
  return e;
}

}  // namespace kvlab
