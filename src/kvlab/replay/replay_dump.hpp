#pragma once
// Replays a dump through several compressors at once: each layer is read once
// (hyperslabs; never the whole file) and its (job × kv head) blocks run in
// parallel with OpenMP. Results are stored by index, so they do not depend on
// the thread count or on scheduling.
#include <span>
#include <string>
#include <vector>

#include "kvlab/compressors/compressor.hpp"
#include "kvlab/core/progress.hpp"
#include "kvlab/io/dump_reader.hpp"
#include "kvlab/replay/block_result.hpp"
#include "kvlab/replay/replay_options.hpp"

namespace kvlab {

struct JobResult {
  std::vector<BlockResult> blocks;  // ordered by (layer, kv head)
  int prompt_len = 0;
  int decode_steps = 0;
  bool attention = false;           // attention metrics were computed
  std::string error;                // non-empty: this job failed (the others of the batch are unaffected)
  double compute_seconds = 0;       // summed over its blocks (thread-seconds, not wall time)
  bool ok() const { return error.empty(); }
};

// Which layers and how many decode steps `opts` selects for `info`; throws
// kvlab::Error for a layer out of range.
std::vector<int> selected_layers(const DumpInfo& info, const ReplayOptions& opts);
int selected_decode_steps(const DumpInfo& info, const ReplayOptions& opts);

// Throws kvlab::Error if a compressor cannot run on this dump (needs queries or
// RoPE metadata the dump lacks) or attention metrics are asked of a dump
// without queries.
void check_compatible(const DumpInfo& info, const Compressor& compressor, const ReplayOptions& opts);

// Replays every job on the dump; each layer is read once for all of them.
// A job that fails (it cannot run on this dump, or a compressor throws)
// returns with its error set and the others go on; a failure to read the dump
// throws kvlab::Error. progress (optional) advances by one per finished block.
std::vector<JobResult> replay_dump(const DumpReader& reader, std::span<const Compressor* const> jobs,
                                   const ReplayOptions& opts, Progress* progress = nullptr);

}  // namespace kvlab
