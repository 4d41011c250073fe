#pragma once
// BlockCodec that applies the group quantizer to a whole segment.
#include "kvlab/compressors/block_codec.hpp"
#include "kvlab/quant/group_quantizer.hpp"

namespace kvlab {

class QuantCodec : public BlockCodec {
 public:
  explicit QuantCodec(QuantConfig cfg) : cfg_(cfg) {}
  BitCount encode(ConstMatrixRef x, MatrixRef out, const SegmentContext&) const override {
    return fake_quantize(x, cfg_, out);
  }
  const QuantConfig& config() const { return cfg_; }

 private:
  QuantConfig cfg_;
};

}  // namespace kvlab
