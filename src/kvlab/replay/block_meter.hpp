#pragma once
// Measuring one block's cache at the evaluated steps of a replay, against the
// recorded reference of the step (ReferenceChunk, shared by every compressor
// replayed on the head). Work per step follows what changed, not the cache
// size, wherever the state says what changed:
//   - K/V errors: per-row sums updated for the rows CacheReader::changes_since
//     lists (TensorErrorTracker);
//   - compressed logits: one pass over K̂ for all steps of a chunk at its
//     first step, then only rows changed since;
//   - compressed outputs ô = p̂·V̂: blocks of rows below frozen_rows() (which
//     never change again) are summed once for all steps of the chunk in
//     finish_chunk; only the newer blocks are read at every step.
// Every number equals the one computed from scratch at the step (the kernels
// fix each operation's order), which `incremental = false` does.
#include <span>
#include <vector>

#include "kvlab/compressors/compressor.hpp"
#include "kvlab/metrics/attention.hpp"
#include "kvlab/metrics/tensor_error_tracker.hpp"
#include "kvlab/replay/block_result.hpp"
#include "kvlab/replay/head_input.hpp"
#include "kvlab/replay/reference_chunk.hpp"

namespace kvlab {

// The reference of the step being measured: step `step` of chunk number
// `chunk_id` (chunks are numbered in replay order; null chunk = no attention).
struct StepReference {
  const ReferenceChunk* chunk = nullptr;
  int chunk_id = 0;
  int step = 0;
};

class BlockMeter {
 public:
  // `state`'s cache at decode step `decode_step`, against `in`. With
  // incremental = false everything is recomputed over the whole cache.
  StepPoint measure(const CacheReader& state, const HeadInput& in, int decode_step, const StepReference& ref,
                    bool incremental);
  // After the chunk's last step: completes attn.out_rel of its steps, the
  // last chunk.steps() entries of `steps` (they may be left at 0 until then).
  void finish_chunk(const CacheReader& state, const ReferenceChunk& chunk, std::span<StepPoint> steps);

 private:
  // The step's compressed logits, rows of `stride` floats per query head.
  const float* hat_logits(const CacheReader& state, const CacheView& view, const StepReference& ref, bool incremental,
                          std::size_t& stride);
  void start_chunk(const CacheReader& state, const CacheView& view, const StepReference& ref);

  int measured_tokens_ = 0;  // the cache size at the previous measure
  CacheChanges changes_;
  TensorErrorTracker keys_, values_;

  // The current chunk (incremental mode).
  int chunk_id_ = -1;
  int chunk_tokens_ = 0;  // the cache size at its first step
  int width_ = 0;         // the cache size at its last step
  std::vector<float> hat_;  // compressed logits [steps·g × width_]
  bool deferred_ = false;   // ô of frozen blocks waits for finish_chunk
  int frozen_blocks_ = 0;   // whole kWeightedRowBlock blocks frozen at the first step
  std::vector<double> p_hat_;              // [steps·g × width_]
  std::vector<std::vector<double>> tail_;  // per (step, head): sums of blocks frozen_blocks_.., [blocks × d]

  Matrix estimated_;  // key_logits of a state whose keys are not reconstructible
  AttentionScratch scratch_;
  std::vector<double> part_, o_hat_;
};

}  // namespace kvlab
