#pragma once
// Rank 0's plan of an MPI sweep: the units of work (a job, or one layer range
// of it: job_pieces.hpp) and the dispatcher that hands them out in batches
// (runner/job_schedule.hpp). No MPI here, so experiments/bench/sim_cluster.cpp
// schedules simulated ranks with exactly this code.
#include <map>
#include <optional>
#include <span>
#include <vector>

#include "kvlab/runner/job.hpp"
#include "kvlab/runner/job_schedule.hpp"

namespace kvlab::distributed {

// What rank 0 knows of each job beforehand.
struct JobEstimate {
  double cost = 0;          // runner/job_cost.hpp
  long long blocks = 0;     // for progress
  std::vector<int> layers;  // the layers it replays (empty: unknown, never cut)
};

// A batch as handed out: jobs of one dump, whole or one layer range of each.
struct Batch {
  std::vector<std::size_t> jobs;
  int piece = 0, pieces = 1;
  std::vector<int> layers;  // with pieces > 1: the range every job of the batch replays
};

// Into how many layer ranges the jobs of one dump are cut: enough that no
// piece of its largest job exceeds 1/8 of the work per worker, at most one
// per layer; 1 for a single worker.
int pieces_for(double largest_job, double total_work, int workers, std::size_t layers);

// For each job of `todo`, into how many layer ranges it is cut (1: whole);
// the jobs of one dump (same replay settings) are cut alike, so that pieces
// of one layer range still share their reads.
std::vector<int> job_pieces(std::span<const Job> jobs, const std::vector<std::size_t>& todo,
                            const std::vector<JobEstimate>& estimates, int workers);

class WorkPlan {
 public:
  // split = false: whole jobs only (e.g. with the model in the loop).
  WorkPlan(std::span<const Job> jobs, const std::vector<std::size_t>& todo, const std::vector<JobEstimate>& estimates,
           int workers, int max_batch, bool split);

  Batch next();  // no jobs: all handed out
  long long blocks_of(std::size_t job, int piece) const;
  double cost_of(std::size_t job, int piece) const;

 private:
  struct Unit {
    std::size_t job;
    int piece, pieces;
    std::vector<int> layers;
  };
  std::vector<Unit> units_;
  std::map<std::pair<std::size_t, int>, std::pair<long long, double>> size_;  // (job, piece) → blocks, cost
  std::optional<JobDispatcher> dispatcher_;
};

}  // namespace kvlab::distributed
