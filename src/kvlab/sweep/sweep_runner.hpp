#pragma once
// Runs a SweepPlan through the job runner (runner/job_runner.hpp), on one
// process or spread over the ranks of an MPI job (distributed/
// distribute_jobs.hpp); optionally only one static shard of it (shard.hpp).
// Each finished job's rows are flushed at once (ResultsWriter), so an
// interrupted sweep resumes without losing or duplicating rows; at the end
// the rows are put in plan order, so every way of running a plan gives the
// same files.
#include <optional>

#include "kvlab/distributed/distribute_jobs.hpp"
#include "kvlab/sweep/shard.hpp"
#include "kvlab/sweep/sweep_plan.hpp"

namespace kvlab {

struct SweepRunOptions {
  bool resume = false;
  bool overwrite = false;  // start afresh even if results exist
  bool quiet = false;
  int threads = 0;         // per rank; overrides the plan's when > 0
  int chunk = 0;           // jobs per batch sharing layer reads (0: 4 × threads)
  std::optional<ShardId> shard;  // run only this shard of the plan
};

struct SweepOutcome {
  int jobs = 0, skipped = 0, ok = 0, failed = 0;  // jobs: of the plan, or of the shard
  int ranks = 1;
  double seconds = 0;
};

// With MPI every rank calls it; the outcome is complete on rank 0 only.
SweepOutcome run_sweep(const SweepPlan& plan, const SweepRunOptions& options);

// Cost, blocks and layers of every job of the plan (for scheduling, progress).
std::vector<distributed::JobEstimate> plan_job_estimates(const SweepPlan& plan);

}  // namespace kvlab
