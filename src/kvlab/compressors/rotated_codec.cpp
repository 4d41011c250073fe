#include "kvlab/compressors/rotated_codec.hpp"

#include "kvlab/compressors/stream_compressor.hpp"

namespace kvlab {

BitCount RotatedCodec::encode(ConstMatrixRef x, MatrixRef out, const SegmentContext& ctx) const {
  Matrix y = x;
  rotation_.apply(y);
  const BitCount bits = inner_->encode(y, out, ctx);
  rotation_.invert(out);
  return bits;
}

ParamSpec rotation_param() {
  return ParamSpec{"rotation", ParamType::Choice, "none",
          "rotate each token within the head dim before quantizing (hadamard: random signs + fast Walsh-Hadamard; "
          "random: seeded random orthogonal), inverse after",
          0, 0, rotation_kind_names()}
      .omitted_at_default();
}

namespace {

class RotatingStreamCompressor : public Compressor {
 public:
  RotatingStreamCompressor(StreamSpec keys, StreamSpec values, RotationKind kind)
      : keys_(std::move(keys)), values_(std::move(values)), kind_(kind) {}
  std::unique_ptr<CacheState> new_state(const BlockContext& ctx) const override {
    auto rotated = [&](const StreamSpec& s, int tensor) {
      Rotation r = Rotation::for_block(kind_, ctx.head_dim, ctx.seed, ctx.layer, ctx.kv_head, tensor);
      return StreamSpec{std::make_shared<RotatedCodec>(s.codec, std::move(r)), s.policy};
    };
    return std::make_unique<StreamCacheState>(ctx, rotated(keys_, 0), rotated(values_, 1));
  }

 private:
  StreamSpec keys_, values_;
  RotationKind kind_;
};

}  // namespace

std::unique_ptr<Compressor> make_stream_compressor(StreamSpec keys, StreamSpec values, RotationKind rotation) {
  if (rotation == RotationKind::None) return std::make_unique<StreamCompressor>(std::move(keys), std::move(values));
  return std::make_unique<RotatingStreamCompressor>(std::move(keys), std::move(values), rotation);
}

}  // namespace kvlab
