#include "kvlab/metrics/tensor_error_tracker.hpp"

#include <algorithm>

#include "kvlab/core/error.hpp"

namespace kvlab {

void TensorErrorTracker::update(ConstMatrixRef x, ConstMatrixRef x_hat, const RowRanges& rows) {
  const int d = static_cast<int>(x.cols());
  for (const RowRange& r : rows) {
    KVLAB_ASSERT(r.begin >= 0 && r.end <= x.rows() && r.end <= x_hat.rows());
    if (r.end > static_cast<int>(rows_.size())) {
      const std::size_t n = static_cast<std::size_t>(r.end);
      rows_.resize(std::max(n, 2 * rows_.size()));
      const std::size_t blocks = (rows_.size() + kErrorRowBlock - 1) / kErrorRowBlock;
      blocks_.resize(blocks);
      blocks_rows_.resize(blocks, 0);
      stale_.resize(blocks, 1);
    }
    for (int i = r.begin; i < r.end; ++i) rows_[i] = row_error(x.row(i).data(), x_hat.row(i).data(), d);
    for (int b = r.begin / kErrorRowBlock; b * kErrorRowBlock < r.end; ++b) stale_[b] = 1;
  }
}

TensorError TensorErrorTracker::total(int t) {
  KVLAB_ASSERT(t >= 0 && t <= static_cast<int>(rows_.size()));
  TensorError e;
  for (int b = 0; b * kErrorRowBlock < t; ++b) {
    const int end = std::min(t, (b + 1) * kErrorRowBlock);
    if (stale_[b] || blocks_rows_[b] != end) {
      TensorError block;
      for (int i = b * kErrorRowBlock; i < end; ++i) block += rows_[i];
      blocks_[b] = block;
      blocks_rows_[b] = end;
      stale_[b] = 0;
    }
    e += blocks_[b];
  }
  return e;
}

}  // namespace kvlab
