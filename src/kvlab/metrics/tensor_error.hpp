#pragma once
// Reconstruction error of one tensor of one block (REFERENCE: Metrics).
// Absent tokens reconstruct as 0 (the view already holds zeros there).
#include <cmath>
#include <limits>

#include "kvlab/core/types.hpp"

namespace kvlab {

struct TensorError {
  double sq_err = 0.0;   // ‖X − X̂‖_F²
  double sq_norm = 0.0;  // ‖X‖_F²
  double max_abs = 0.0;  // max |X − X̂|

  double rel() const { return sq_norm > 0 ? std::sqrt(sq_err / sq_norm) : (sq_err > 0 ? INFINITY : 0.0); }
  TensorError& operator+=(const TensorError& o) {
    sq_err += o.sq_err;
    sq_norm += o.sq_norm;
    max_abs = std::max(max_abs, o.max_abs);
    return *this;
  }
};

// x, x_hat: [t × d]. Accumulates in double.
TensorError tensor_error(ConstMatrixRef x, ConstMatrixRef x_hat);

// A tensor whose error is not defined (QJL keys): every field NaN.
inline TensorError undefined_tensor_error() {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  return {nan, nan, nan};
}

}  // namespace kvlab
