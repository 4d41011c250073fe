#pragma once
// Runs a SweepPlan through the job runner (runner/job_runner.hpp); each
// finished job's rows are flushed at once (ResultsWriter), so an interrupted
// sweep resumes without losing or duplicating rows.
#include "kvlab/sweep/sweep_plan.hpp"

namespace kvlab {

struct SweepRunOptions {
  bool resume = false;
  bool overwrite = false;  // start afresh even if results exist
  bool quiet = false;
  int threads = 0;         // overrides the plan's when > 0
  int chunk = 0;           // jobs per batch sharing layer reads (0: 4 × threads)
};

struct SweepOutcome {
  int jobs = 0, skipped = 0, ok = 0, failed = 0;
  double seconds = 0;
};

SweepOutcome run_sweep(const SweepPlan& plan, const SweepRunOptions& options);

}  // namespace kvlab
