#include "kvlab/compressors/compressed_stream.hpp"

#include <algorithm>

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

void CompressedStream::compress_front(int count, ReconBuffer& recon, bool prefill, const ConstMatrixRef* source) {
  if (count <= 0) return;
  SegmentContext ctx = base_;
  ctx.segment_index = segments_;
  ctx.prefill = prefill;
  ctx.start = compressed_;
  auto dest = rows(recon, compressed_, count);
  if (source != nullptr) {
    segment_bits_ += codec_->encode(source->topRows(count), dest, ctx);  // straight from the input
  } else {
    scratch_ = dest;  // codecs never encode in place
    segment_bits_ += codec_->encode(scratch_, dest, ctx);
  }
  formed_.push_back({fed_, compressed_, count});
  compressed_ += count;
  ++segments_;
}

void CompressedStream::changes_since(int since, RowRanges& out) const {
  KVLAB_ASSERT(since >= 0 && since <= fed_);
  add_rows(out, since, fed_);
  // Segments formed after the view at `since` (newest first); their rows at
  // or past `since` are already listed.
  for (auto it = formed_.rbegin(); it != formed_.rend() && it->fed > since; ++it)
    add_rows(out, it->start, std::min(it->start + it->count, since));
}

void CompressedStream::prefill(ConstMatrixRef x, ReconBuffer& recon) {
  KVLAB_ASSERT(fed_ == 0);
  const int n = static_cast<int>(x.rows());
  fed_ = n;
  const int eligible = n - policy_.recent;
  const int count = eligible > 0 ? eligible / policy_.prefill_block * policy_.prefill_block : 0;
  compress_front(count, recon, true, &x);
  rows(recon, count, n - count) = x.bottomRows(n - count);
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
