#pragma once
// Replays the kv heads of one state: prefill, then one decode token at a
// time, measuring every head at the evaluation steps. Single-threaded and
// deterministic.
#include <span>
#include <vector>

#include "kvlab/compressors/compressor.hpp"
#include "kvlab/replay/block_result.hpp"
#include "kvlab/replay/replay_options.hpp"

namespace kvlab {

// The recorded tensors of one kv head.
struct HeadInput {
  ConstMatrixRef keys;              // [T × d] recorded
  ConstMatrixRef values;            // [T × d]
  std::span<const Matrix> queries;  // the group's query heads, each [T × d]; empty = none
};

// What one LayerCacheState is fed: heads[h] is head h of the state (kv head
// first_head + h of the layer).
struct UnitInput {
  std::vector<HeadInput> heads;
  int layer = 0;
  int first_head = 0;
  int prompt_len = 0;
  int decode_steps = 0;  // tokens fed after the prompt
};

// Replays `in` through `state` (fresh, with in.heads.size() heads); one result
// per head, in order.
std::vector<BlockResult> replay_unit(LayerCacheState& state, const UnitInput& in, const std::vector<int>& eval_steps,
                                     bool attention);

// One block of a block-scoped compressor (tests, benchmarks).
struct BlockInput {
  ConstMatrixRef keys;              // [T × d] recorded
  ConstMatrixRef values;            // [T × d]
  std::span<const Matrix> queries;  // the group's heads, each [T × d]; empty = none
  int prompt_len = 0;
  int decode_steps = 0;             // tokens fed after the prompt
};

BlockResult replay_block(const Compressor& compressor, const BlockContext& ctx, const BlockInput& in,
                         const std::vector<int>& eval_steps, bool attention);

}  // namespace kvlab
