#pragma once
// A BlockCodec compresses one immutable segment of a single tensor (K or V):
// [n × d] in, reconstruction and exact size out. Streams (compressed_stream.hpp)
// decide *when* tokens form a segment; codecs decide *how* it is stored. Uniform
// quantization, KIVI and GEAR differ only in these two choices.
#include <cstdint>

#include "kvlab/core/bit_count.hpp"
#include "kvlab/core/types.hpp"

namespace kvlab {

struct SegmentContext {
  std::uint64_t seed = 0;
  int layer = 0;
  int kv_head = 0;
  int tensor = 0;         // 0 = keys, 1 = values
  int segment_index = 0;  // 0 for the prefill segment (if any), then 1, 2, ...
  bool prefill = false;   // the segment was formed at prefill
  int start = 0;          // first token position of the segment
};

class BlockCodec {
 public:
  virtual ~BlockCodec() = default;
  // Writes the reconstruction of x into out (same shape; out never aliases x).
  virtual BitCount encode(ConstMatrixRef x, MatrixRef out, const SegmentContext& ctx) const = 0;
};

}  // namespace kvlab
