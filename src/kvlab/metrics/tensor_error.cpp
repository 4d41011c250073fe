#include "kvlab/metrics/tensor_error.hpp"

#include <algorithm>

namespace kvlab {

namespace {
constexpr int kLanes = 8;  // channel c accumulates in lane c mod 8; lanes are combined pairwise
}  // namespace

// The lanes are plain arrays: the compiler vectorises them without
// reassociating anything, so the SSE2 build and the AVX2 clone agree exactly.
__attribute__((target_clones("avx2", "default"))) TensorError row_error(const float* x, const float* x_hat, int d) {
  double err[kLanes] = {}, norm[kLanes] = {};
  float mx[kLanes] = {};
  int c = 0;
  for (; c + kLanes <= d; c += kLanes)
    for (int l = 0; l < kLanes; ++l) {
      const float diff = x[c + l] - x_hat[c + l];
      err[l] += static_cast<double>(diff) * diff;
      norm[l] += static_cast<double>(x[c + l]) * x[c + l];
      mx[l] = std::max(mx[l], std::abs(diff));
    }
  for (int l = 0; c + l < d; ++l) {
    const float diff = x[c + l] - x_hat[c + l];
    err[l] += static_cast<double>(diff) * diff;
    norm[l] += static_cast<double>(x[c + l]) * x[c + l];
    mx[l] = std::max(mx[l], std::abs(diff));
  }
  for (int w = kLanes / 2; w >= 1; w /= 2)
    for (int l = 0; l < w; ++l) {
      err[l] += err[l + w];
      norm[l] += norm[l + w];
      mx[l] = std::max(mx[l], mx[l + w]);
    }
  return {err[0], norm[0], static_cast<double>(mx[0])};
}

TensorError tensor_error(ConstMatrixRef x, ConstMatrixRef x_hat) {
  TensorError e;
  const int rows = static_cast<int>(x.rows()), cols = static_cast<int>(x.cols());
  for (int b = 0; b < rows; b += kErrorRowBlock) {
    TensorError block;
    for (int r = b; r < std::min(rows, b + kErrorRowBlock); ++r) block += row_error(x.row(r).data(), x_hat.row(r).data(), cols);
    e += block;
  }
  return e;
}

}  // namespace kvlab
