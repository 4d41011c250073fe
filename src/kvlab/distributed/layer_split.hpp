#pragma once
// One dump too large for one machine's time (`kvlab run` under mpirun): its
// selected layers are split into contiguous ranges, one per rank
// (job_pieces.hpp); each rank runs every job through the job runner on its
// layers only, so it reads only those, and rank 0 gathers the pieces and puts
// each job back together. The records equal those of one process.
#include <span>
#include <vector>

#include "kvlab/distributed/communicator.hpp"
#include "kvlab/runner/job_runner.hpp"

namespace kvlab::distributed {

// Every rank calls it with the same jobs (all on the dump `info` describes,
// with the same replay settings). Rank 0 returns every job's complete record,
// in job order; the other ranks return nothing.
std::vector<JobRecord> run_jobs_layer_split(const Communicator& comm, std::span<const Job> jobs, const DumpInfo& info,
                                            const RunnerOptions& options);

}  // namespace kvlab::distributed
