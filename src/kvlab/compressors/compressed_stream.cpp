#include "kvlab/compressors/compressed_stream.hpp"

namespace kvlab {

CompressedStream::CompressedStream(std::shared_ptr<const BlockCodec> codec, StreamPolicy policy,
                                   SegmentContext base, int tensor, int head_dim)
    : codec_(std::move(codec)), policy_(policy), base_(base), tensor_(tensor), head_dim_(head_dim) {
  KVLAB_ASSERT(policy_.prefill_block >= 1 && policy_.decode_block >= 1 && policy_.recent >= 0);
  base_.tensor = tensor;
}

MatrixRef CompressedStream::rows(ReconBuffer& recon, int start, int count) const {
  return tensor_ == 0 ? recon.keys_rows(start, count) : recon.values_rows(start, count);
}

void CompressedStream::compress_front(int count, ReconBuffer& recon, bool prefill) {
  if (count <= 0) return;
  auto exact = rows(recon, compressed_, count);
  scratch_.resize(count, exact.cols());
  SegmentContext ctx = base_;
  ctx.segment_index = segments_;
  ctx.prefill = prefill;
  ctx.start = compressed_;
  segment_bits_ += codec_->encode(exact, scratch_, ctx);
  exact = scratch_;
  compressed_ += count;
  ++segments_;
}

void CompressedStream::prefill(ConstMatrixRef x, ReconBuffer& recon) {
  KVLAB_ASSERT(fed_ == 0);
  const int n = static_cast<int>(x.rows());
  rows(recon, 0, n) = x;
  fed_ = n;
  const int eligible = n - policy_.recent;
  if (eligible > 0) compress_front(eligible / policy_.prefill_block * policy_.prefill_block, recon, true);
}

void CompressedStream::append(ConstRowRef x, ReconBuffer& recon) {
  rows(recon, fed_, 1) = x;
  ++fed_;
  while (fp16_tokens() >= policy_.decode_block + policy_.recent) compress_front(policy_.decode_block, recon, false);
}

BitCount CompressedStream::bits() const {
  BitCount b = segment_bits_;
  b.fp16_buffer += 16ULL * static_cast<std::uint64_t>(fp16_tokens()) * static_cast<std::uint64_t>(head_dim_);
  return b;
}

}  // namespace kvlab
