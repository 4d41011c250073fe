#pragma once
// Replays one block: prefill, then one decode token at a time, measuring at
// the evaluation steps. Single-threaded and deterministic.
#include <span>

#include "kvlab/compressors/compressor.hpp"
#include "kvlab/replay/block_result.hpp"
#include "kvlab/replay/replay_options.hpp"

namespace kvlab {

struct BlockInput {
  ConstMatrixRef keys;                 // [T × d] recorded
  ConstMatrixRef values;               // [T × d]
  std::span<const Matrix> queries;     // the group's heads, each [T × d]; empty = none
  int prompt_len = 0;
  int decode_steps = 0;                // tokens fed after the prompt
};

BlockResult replay_block(const Compressor& compressor, const BlockContext& ctx, const BlockInput& in,
                         const std::vector<int>& eval_steps, bool attention);

}  // namespace kvlab
