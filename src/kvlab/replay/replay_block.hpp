#pragma once
// Replays the kv heads of one or more states over the same recorded heads:
// prefill, then one decode token at a time, measuring every head at the
// evaluation steps. The states advance in lockstep, so the recorded attention
// of a (head, step) is computed once for all of them. Single-threaded and
// deterministic: a state's results do not depend on which others it is
// replayed with.
#include <span>
#include <string>
#include <vector>

#include "kvlab/compressors/compressor.hpp"
#include "kvlab/replay/block_meter.hpp"
#include "kvlab/replay/head_input.hpp"
#include "kvlab/replay/block_result.hpp"
#include "kvlab/replay/replay_options.hpp"

namespace kvlab {

// What one LayerCacheState is fed: heads[h] is head h of the state (kv head
// first_head + h of the layer).
struct UnitInput {
  std::vector<HeadInput> heads;
  int layer = 0;
  int first_head = 0;
  int prompt_len = 0;
  int decode_steps = 0;  // tokens fed after the prompt
  AttentionRule attention;  // the layer's scale, soft-cap and window (metrics)
};

// What replaying one state yields: one result per head, in order, or the
// error that stopped it (then `blocks` is empty).
struct UnitResult {
  std::vector<BlockResult> blocks;
  std::string error;
  double seconds = 0;  // its own feeding and measuring, plus its share of the reference
};

struct UnitSettings {
  bool attention = true;    // attention metrics (in.heads[*].queries must be non-empty)
  bool incremental = true;  // ReplayOptions::incremental
};

// Replays `in` through every state of `states` (fresh, each with
// in.heads.size() heads); one result per state, in order. A state that throws
// stops alone.
std::vector<UnitResult> replay_units(std::span<LayerCacheState* const> states, const UnitInput& in,
                                     const std::vector<int>& eval_steps, const UnitSettings& settings);

// One state; rethrows its error.
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
// (replay_block takes the attention rule from ctx.attention.)

BlockResult replay_block(const Compressor& compressor, const BlockContext& ctx, const BlockInput& in,
                         const std::vector<int>& eval_steps, bool attention);

}  // namespace kvlab
