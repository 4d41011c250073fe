#pragma once
// One tensor (K or V) of a block, fed token by token, stored as a sequence of
// immutable compressed segments followed by a tail of FP16 tokens.
//
// Policy (all counts in tokens):
//   prefill: the first ⌊(P − recent) / prefill_block⌋ · prefill_block prompt
//            tokens form ONE segment (prefill_block = 1: all but `recent`);
//   decode:  whenever the FP16 tail holds decode_block + recent tokens, its
//            oldest decode_block tokens form a new segment.
// Examples: KIVI keys (R, R, 0); KIVI values (1, 1, R); per-token uniform
// (1, 1, 0); per-channel uniform with group G (G, G, 0); GEAR (G, n_b, 0).
#include <memory>

#include "kvlab/compressors/block_codec.hpp"
#include "kvlab/compressors/recon_buffer.hpp"

namespace kvlab {

struct StreamPolicy {
  int prefill_block = 1;
  int decode_block = 1;
  int recent = 0;
};

class CompressedStream {
 public:
  // `tensor` selects rows of `recon` (0 = keys, 1 = values) written by this stream.
  CompressedStream(std::shared_ptr<const BlockCodec> codec, StreamPolicy policy, SegmentContext base,
                   int tensor, int head_dim);

  // FP16 tail tokens are kept as recorded (dumps hold FP16 already), so the
  // tail's rows of `recon` are also the exact input for later segments.
  // The caller resizes `recon` before feeding tokens.
  void prefill(ConstMatrixRef x, ReconBuffer& recon);  // x: [P × d], positions [0, P)
  void append(ConstRowRef x, ReconBuffer& recon);      // x: [1 × d], position fed()

  int fed() const { return fed_; }
  int compressed_tokens() const { return compressed_; }
  int fp16_tokens() const { return fed_ - compressed_; }
  int segments() const { return segments_; }
  BitCount bits() const;  // segments + 16 bits per FP16 tail element

  // Appends to `out` the rows this stream wrote since it had fed `since`
  // tokens: the tokens fed since, and the rows of segments formed since
  // (CacheReader::changes_since). Finished segments are never written again.
  void changes_since(int since, RowRanges& out) const;

 private:
  MatrixRef rows(ReconBuffer& recon, int start, int count) const;
  // Encodes the `count` oldest FP16 tokens; `source` holds their exact values
  // (the tail rows of `recon` when null).
  void compress_front(int count, ReconBuffer& recon, bool prefill, const ConstMatrixRef* source = nullptr);

  std::shared_ptr<const BlockCodec> codec_;
  StreamPolicy policy_;
  SegmentContext base_;
  int tensor_;
  int head_dim_;
  int fed_ = 0;
  int compressed_ = 0;  // tokens [0, compressed_) are in segments, the rest FP16
  int segments_ = 0;
  BitCount segment_bits_;
  Matrix scratch_;
  // Segment formations in order: rows [start, start + count) were encoded
  // when `fed` tokens had been fed.
  struct Formed {
    int fed, start, count;
  };
  std::vector<Formed> formed_;
};

}  // namespace kvlab
