#pragma once
// A Compressor whose states are StreamCacheStates with fixed key/value
// codecs and policies (uniform, KCVT, KIVI; GEAR builds on the same shape).
#include "kvlab/compressors/stream_state.hpp"

namespace kvlab {

class StreamCompressor : public Compressor {
 public:
  StreamCompressor(StreamSpec keys, StreamSpec values) : keys_(std::move(keys)), values_(std::move(values)) {}
  std::unique_ptr<CacheState> new_state(const BlockContext& ctx) const override {
    return std::make_unique<StreamCacheState>(ctx, keys_, values_);
  }

 private:
  StreamSpec keys_;
  StreamSpec values_;
};

}  // namespace kvlab
