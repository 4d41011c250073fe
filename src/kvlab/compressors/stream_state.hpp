#pragma once
// A CacheState made of two CompressedStreams (keys and values) over one
// ReconBuffer: the shape of every quantization-style method (uniform, KCVT,
// KIVI, GEAR and its variants). Methods differ only in codecs and policies.
#include <algorithm>

#include "kvlab/compressors/compressed_stream.hpp"

namespace kvlab {

struct StreamSpec {
  std::shared_ptr<const BlockCodec> codec;
  StreamPolicy policy;
};

class StreamCacheState : public CacheState {
 public:
  StreamCacheState(const BlockContext& ctx, StreamSpec keys, StreamSpec values);

  void prefill(ConstMatrixRef keys, ConstMatrixRef values, const QueryGroup& q) override;
  void append(ConstRowRef key, ConstRowRef value, const QueryGroup& q) override;
  int size() const override { return recon_.size(); }
  CacheView view() const override { return recon_.view(); }
  BitCount bits() const override { return keys_.bits() + values_.bits(); }
  void changes_since(int since, CacheChanges& out) const override;
  int frozen_rows() const override { return std::min(keys_.compressed_tokens(), values_.compressed_tokens()); }

  const CompressedStream& key_stream() const { return keys_; }
  const CompressedStream& value_stream() const { return values_; }

 private:
  ReconBuffer recon_;
  CompressedStream keys_;
  CompressedStream values_;
};

// Every token kept exactly in FP16: the baseline.
class Fp16CacheState : public CacheState {
 public:
  explicit Fp16CacheState(const BlockContext& ctx) : recon_(ctx.max_tokens, ctx.head_dim) {}
  void prefill(ConstMatrixRef keys, ConstMatrixRef values, const QueryGroup& q) override;
  void append(ConstRowRef key, ConstRowRef value, const QueryGroup& q) override;
  int size() const override { return recon_.size(); }
  CacheView view() const override { return recon_.view(); }
  BitCount bits() const override;
  void changes_since(int since, CacheChanges& out) const override;  // appended rows only
  int frozen_rows() const override { return size(); }

 private:
  ReconBuffer recon_;
};

}  // namespace kvlab
