#pragma once
// tensor_error of a growing cache, updated row by row: the replay tells it
// which rows changed since the last evaluation (CacheReader::changes_since),
// so an evaluation costs the changed rows plus one sum per block of rows, not
// a rescan of the whole cache. It keeps tensor_error's per-row and per-block
// sums and adds them in the same order, so total(t) equals
// tensor_error(x.topRows(t), x_hat.topRows(t)) bit for bit.
#include <cstdint>
#include <vector>

#include "kvlab/core/row_range.hpp"
#include "kvlab/metrics/tensor_error.hpp"

namespace kvlab {

class TensorErrorTracker {
 public:
  // Recomputes the terms of `rows` (each range within [0, x.rows())) from
  // x and x_hat, which hold at least as many rows.
  void update(ConstMatrixRef x, ConstMatrixRef x_hat, const RowRanges& rows);
  // The error over rows [0, t); every row below t must have been updated
  // since it last changed.
  TensorError total(int t);

 private:
  std::vector<TensorError> rows_;
  std::vector<TensorError> blocks_;       // sum over the block's rows below blocks_rows_
  std::vector<int> blocks_rows_;          // rows the block sum covers (its end, exclusive)
  std::vector<std::uint8_t> stale_;       // a row of the block changed since its sum
};

}  // namespace kvlab
