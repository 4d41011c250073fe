#pragma once
// Reconstruction error of one tensor of one block (REFERENCE: Metrics).
// Absent tokens reconstruct as 0 (the view already holds zeros there).
//
// Summation order (fixed, so results do not depend on how they were
// computed): each row's terms in double over its channels (row_error), then
// the rows in blocks of kErrorRowBlock, each block summed in row order, then
// the block sums in block order. TensorErrorTracker (tensor_error_tracker.hpp)
// keeps the same per-row and per-block sums and updates only changed rows, so
// it agrees with tensor_error bit for bit.
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

inline constexpr int kErrorRowBlock = 64;

// The terms of one row x, x_hat [d]: Σ (x − x̂)², Σ x², max |x − x̂|.
TensorError row_error(const float* x, const float* x_hat, int d);

// x, x_hat: [t × d]. Accumulates in double, in the order above.
TensorError tensor_error(ConstMatrixRef x, ConstMatrixRef x_hat);

// A tensor whose error is not defined (QJL keys): every field NaN.
inline TensorError undefined_tensor_error() {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  return {nan, nan, nan};
}

}  // namespace kvlab
