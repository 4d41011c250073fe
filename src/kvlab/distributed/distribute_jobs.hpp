#pragma once
// The one job runner (runner/job_runner.hpp) over the ranks of an MPI job.
// Ranks pull batches of work from rank 0 as they become idle, largest first
// (runner/job_schedule.hpp: JobDispatcher); a batch is jobs of one dump, so
// they share its layer reads, and runs through run_jobs. When one job is too
// large for the rest to balance it (more than 1/8 of the work per rank), the
// jobs of its dump are cut into layer ranges (job_pieces.hpp) that ranks run
// independently, each reading only its layers, and rank 0 puts them back
// together. Rank 0 serves on its main thread while a second thread of it runs
// work too (only the main thread calls MPI). Whole jobs' rows are formatted
// where they ran (ResultsWriter::format); every finished job reaches rank 0's
// sink, in the order jobs finish; the caller writes them and restores plan
// order.
#include <span>
#include <vector>

#include "kvlab/distributed/communicator.hpp"
#include "kvlab/distributed/wire.hpp"
#include "kvlab/distributed/work_plan.hpp"
#include "kvlab/runner/job_runner.hpp"

namespace kvlab::distributed {

class FinishedJobSink {
 public:
  virtual ~FinishedJobSink() = default;
  virtual void finished(FinishedJob&& job) = 0;  // on rank 0's main thread
};

struct DistributeOptions {
  RunnerOptions runner;  // per rank: threads, step; progress on rank 0 only
  int max_batch = 0;     // most jobs handed out at once (0: 4 × threads)
  bool split = true;     // cut the largest jobs into layer ranges (never with a runner step)
};

// Every rank calls it with the same `jobs` and `layout`. On rank 0, `todo`
// lists the job indices to run and `estimates` describes every job; other
// ranks pass empty ones and no sink. With one rank, the todo jobs run in
// order through run_jobs, exactly as without MPI.
void distribute_jobs(const Communicator& comm, std::span<const Job> jobs, const std::vector<std::size_t>& todo,
                     const std::vector<JobEstimate>& estimates, const DistributeOptions& options,
                     const TableLayout& layout, FinishedJobSink* sink);

}  // namespace kvlab::distributed
