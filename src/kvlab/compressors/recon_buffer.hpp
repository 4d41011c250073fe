#pragma once
// Storage for a block's reconstruction, shared by every CacheState: K̂ and V̂
// preallocated for ctx.max_tokens rows, so appending never reallocates and a
// compressed (immutable) segment is written once and then only read. Storage
// is not zero-filled: whoever adds rows (resize) writes them.
#include <algorithm>

#include "kvlab/compressors/compressor.hpp"
#include "kvlab/core/error.hpp"

namespace kvlab {

class ReconBuffer {
 public:
  ReconBuffer(int capacity, int head_dim)
      : keys_(std::max(capacity, 1), head_dim), values_(std::max(capacity, 1), head_dim) {}

  int size() const { return size_; }
  int head_dim() const { return static_cast<int>(keys_.cols()); }

  // Extends the cache to `tokens` rows; the caller writes the new rows.
  void resize(int tokens) {
    if (tokens > keys_.rows()) grow(tokens);
    size_ = tokens;
  }
  MatrixRef keys_rows(int start, int count) { return keys_.middleRows(start, count); }
  MatrixRef values_rows(int start, int count) { return values_.middleRows(start, count); }

  // Eviction support: a null mask means every token is present.
  void enable_mask() {
    if (!mask_enabled_) {
      mask_enabled_ = true;
      present_.assign(static_cast<std::size_t>(keys_.rows()), 1);
    }
  }
  void evict(int position) {
    enable_mask();
    present_[position] = 0;
    keys_.row(position).setZero();
    values_.row(position).setZero();
  }
  bool is_present(int position) const { return !mask_enabled_ || present_[position] != 0; }

  CacheView view() const {
    return CacheView{keys_.topRows(size_), values_.topRows(size_), mask_enabled_ ? &present_ : nullptr};
  }

 private:
  void grow(int tokens) {
    const int rows = std::max(tokens, static_cast<int>(keys_.rows()) * 2);
    keys_.conservativeResize(rows, Eigen::NoChange);
    values_.conservativeResize(rows, Eigen::NoChange);
    if (mask_enabled_) present_.resize(static_cast<std::size_t>(rows), 1);
  }

  Matrix keys_;
  Matrix values_;
  int size_ = 0;
  bool mask_enabled_ = false;
  PresentMask present_;
};

}  // namespace kvlab
