#pragma once
// One dump too large for one machine's time: its selected layers are split
// into contiguous ranges, one per rank; each rank runs every job through the
// job runner on its layers only (so it reads only those layers), and rank 0
// gathers the per-block results (wire.hpp) and assembles each job's result
// in layer order. Blocks are replayed independently (seeds per layer and
// head), so the assembled records equal those of one process.
#include <span>
#include <vector>

#include "kvlab/distributed/communicator.hpp"
#include "kvlab/runner/job_runner.hpp"

namespace kvlab::distributed {

// The layers of `selected` that rank `rank` of `ranks` replays (contiguous,
// sizes differing by at most one; empty when there are more ranks than layers).
std::vector<int> layers_of_rank(const std::vector<int>& selected, int rank, int ranks);

// Every rank calls it with the same jobs (all on the dump `info` describes,
// with the same replay settings). Rank 0 returns every job's complete record,
// in job order; the other ranks return nothing.
std::vector<JobRecord> run_jobs_layer_split(const Communicator& comm, std::span<const Job> jobs, const DumpInfo& info,
                                            const RunnerOptions& options);

}  // namespace kvlab::distributed
