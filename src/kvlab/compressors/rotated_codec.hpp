#pragma once
// Rotation as a wrapper of any codec: a segment is rotated within the head
// dimension (every token by the same orthogonal R), encoded by the inner codec
// in the rotated basis, and the reconstruction is rotated back, so K̂ and V̂
// are in the original basis. R is drawn per block and tensor from the run seed
// (quant/rotation.hpp), so it costs 0 bits: the bits are the inner codec's.
#include <memory>

#include "kvlab/compressors/params.hpp"
#include "kvlab/compressors/stream_state.hpp"
#include "kvlab/quant/rotation.hpp"

namespace kvlab {

class RotatedCodec : public BlockCodec {
 public:
  RotatedCodec(std::shared_ptr<const BlockCodec> inner, Rotation rotation)
      : inner_(std::move(inner)), rotation_(std::move(rotation)) {}
  BitCount encode(ConstMatrixRef x, MatrixRef out, const SegmentContext& ctx) const override;
  const Rotation& rotation() const { return rotation_; }

 private:
  std::shared_ptr<const BlockCodec> inner_;
  Rotation rotation_;
};

// The `rotation` parameter (none | hadamard | random) of uniform, kivi and kcvt.
ParamSpec rotation_param();

// Keys and values streams; with a rotation, each block wraps both codecs in a
// RotatedCodec with its own R (keys: tensor 0, values: tensor 1).
std::unique_ptr<Compressor> make_stream_compressor(StreamSpec keys, StreamSpec values, RotationKind rotation);

}  // namespace kvlab
