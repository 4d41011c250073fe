#include "kvlab/distributed/work_plan.hpp"

#include <cmath>

#include "kvlab/distributed/job_pieces.hpp"

namespace kvlab::distributed {

int pieces_for(double largest_job, double total_work, int workers, std::size_t layers) {
  if (workers <= 1 || layers <= 1 || largest_job <= 0 || total_work <= 0) return 1;
  const double piece = total_work / (8.0 * workers);
  const double n = std::ceil(largest_job / piece);
  return static_cast<int>(std::min<double>(static_cast<double>(layers), std::max(1.0, n)));
}

std::vector<int> job_pieces(std::span<const Job> jobs, const std::vector<std::size_t>& todo,
                            const std::vector<JobEstimate>& estimates, int workers) {
  const std::vector<std::size_t> group_of = same_replay_groups(jobs);
  double total = 0;
  std::map<std::size_t, double> largest;  // group → its largest job
  for (std::size_t i : todo) {
    total += estimates.at(i).cost;
    largest[group_of[i]] = std::max(largest[group_of[i]], estimates[i].cost);
  }
  std::vector<int> out;
  for (std::size_t i : todo)
    out.push_back(pieces_for(largest[group_of[i]], total, workers, estimates[i].layers.size()));
  return out;
}

WorkPlan::WorkPlan(std::span<const Job> jobs, const std::vector<std::size_t>& todo,
                   const std::vector<JobEstimate>& est, int workers, int max_batch, bool split) {
  const std::vector<std::size_t> group_of = same_replay_groups(jobs);
  const std::vector<int> pieces = split ? job_pieces(jobs, todo, est, workers) : std::vector<int>(todo.size(), 1);
  std::vector<ScheduledJob> scheduled;
  std::map<std::pair<std::size_t, int>, std::size_t> unit_group;  // (group, piece) → dispatcher group
  for (std::size_t t = 0; t < todo.size(); ++t) {
    const std::size_t i = todo[t];
    const int n = pieces[t];
    for (int p = 0; p < n; ++p) {
      Unit u{i, p, n, n > 1 ? piece_layers(est[i].layers, p, n) : std::vector<int>{}};
      const double share =
          n > 1 ? static_cast<double>(u.layers.size()) / static_cast<double>(est[i].layers.size()) : 1.0;
      const std::size_t g = unit_group.emplace(std::make_pair(group_of[i], p), unit_group.size()).first->second;
      scheduled.push_back({units_.size(), est[i].cost * share, g});
      size_[{i, p}] = {std::llround(static_cast<double>(est[i].blocks) * share), est[i].cost * share};
      units_.push_back(std::move(u));
    }
  }
  dispatcher_.emplace(std::move(scheduled), workers, max_batch);
}

Batch WorkPlan::next() {
  Batch b;
  for (std::size_t u : dispatcher_->next()) {
    b.jobs.push_back(units_[u].job);
    b.piece = units_[u].piece;
    b.pieces = units_[u].pieces;
    b.layers = units_[u].layers;
  }
  return b;
}

long long WorkPlan::blocks_of(std::size_t job, int piece) const {
  const auto it = size_.find({job, piece});
  return it == size_.end() ? 0 : it->second.first;
}

double WorkPlan::cost_of(std::size_t job, int piece) const {
  const auto it = size_.find({job, piece});
  return it == size_.end() ? 0 : it->second.second;
}

}  // namespace kvlab::distributed
