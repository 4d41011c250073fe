#pragma once
// How jobs are spread over workers, from their estimated costs
// (job_cost.hpp). Both policies are deterministic and know nothing of MPI, so
// the cluster simulator (experiments/bench/sim_cluster.cpp) runs the very
// code that schedules real ranks.
//
// Dynamic (MPI ranks pull work): the largest remaining job goes first, with
// up to `max_batch` more jobs of its group (same dump and replay settings:
// they share each layer read), largest first, as long as the batch stays
// below max(its first job, remaining work / (2 × workers)) — guided
// self-scheduling: full batches while much is left, single jobs at the end,
// so no worker starts a long batch while the others run dry.
//
// Static (shards, e.g. Slurm job arrays): LPT greedy — jobs by decreasing
// cost (ties: lower index first), each to the least loaded shard (ties: the
// lowest shard).
#include <cstddef>
#include <vector>

namespace kvlab {

struct ScheduledJob {
  std::size_t index = 0;  // the caller's job index
  double cost = 0;
  std::size_t group = 0;  // jobs of one group can share layer reads
};

class JobDispatcher {
 public:
  JobDispatcher(std::vector<ScheduledJob> jobs, int workers, int max_batch);

  // The next batch (indices, one group, largest first); empty when all are given out.
  std::vector<std::size_t> next();
  bool empty() const { return left_ == 0; }
  double remaining_cost() const { return remaining_cost_; }

 private:
  std::vector<std::vector<ScheduledJob>> groups_;  // each sorted by decreasing cost; consumed from the front
  std::vector<std::size_t> head_;                  // next unassigned position in each group
  std::size_t left_ = 0;
  double remaining_cost_ = 0;
  int workers_ = 1, max_batch_ = 1;
};

// shard → its job indices (ascending).
std::vector<std::vector<std::size_t>> partition_lpt(const std::vector<double>& costs, int shards);

}  // namespace kvlab
