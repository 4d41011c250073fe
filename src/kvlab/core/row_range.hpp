#pragma once
// A half-open range of token rows [begin, end) of a block's cache.
#include <vector>

namespace kvlab {

struct RowRange {
  int begin = 0;
  int end = 0;
  int size() const { return end - begin; }
  bool operator==(const RowRange&) const = default;
};

using RowRanges = std::vector<RowRange>;

// Appends [begin, end) to `out` when it is not empty.
inline void add_rows(RowRanges& out, int begin, int end) {
  if (begin < end) out.push_back({begin, end});
}

}  // namespace kvlab
