#pragma once
// The one job runner (runner/job_runner.hpp) over the ranks of an MPI job:
// ranks pull batches of jobs from rank 0 as they become idle, largest first
// (runner/job_schedule.hpp: JobDispatcher), each batch one dump's jobs so
// they share its layer reads, and run them with run_jobs. Rank 0 hands out
// work and collects rows on its main thread while a second thread of it runs
// jobs too (only the main thread calls MPI). Each finished job's rows are
// formatted where it ran (ResultsWriter::format) and reach rank 0's sink in
// the order jobs finish; the caller writes them and restores plan order.
#include <span>
#include <vector>

#include "kvlab/distributed/communicator.hpp"
#include "kvlab/distributed/wire.hpp"
#include "kvlab/runner/job_runner.hpp"

namespace kvlab::distributed {

class FinishedJobSink {
 public:
  virtual ~FinishedJobSink() = default;
  // On rank 0's main thread; ran_here: rank 0 ran it (its blocks already
  // advanced the runner's progress).
  virtual void finished(FinishedJob&& job, bool ran_here) = 0;
};

struct DistributeOptions {
  RunnerOptions runner;     // per rank: threads, step; progress on rank 0 only
  int max_batch = 0;        // most jobs handed out at once (0: 4 × threads)
};

// Every rank calls it with the same `jobs` and `layout`. On rank 0, `todo`
// lists the job indices to run and `costs` every job's estimated cost; other
// ranks ignore both and pass no sink. With one rank, the todo jobs run in
// order through run_jobs, exactly as without MPI.
void distribute_jobs(const Communicator& comm, std::span<const Job> jobs, const std::vector<std::size_t>& todo,
                     const std::vector<double>& costs, const DistributeOptions& options, const TableLayout& layout,
                     FinishedJobSink* sink);

}  // namespace kvlab::distributed
