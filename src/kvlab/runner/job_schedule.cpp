#include "kvlab/runner/job_schedule.hpp"

#include <algorithm>
#include <map>
#include <numeric>

#include "kvlab/core/error.hpp"

namespace kvlab {

namespace {

bool larger_first(const ScheduledJob& a, const ScheduledJob& b) {
  return a.cost != b.cost ? a.cost > b.cost : a.index < b.index;
}

}  // namespace

JobDispatcher::JobDispatcher(std::vector<ScheduledJob> jobs, int workers, int max_batch)
    : left_(jobs.size()), workers_(std::max(1, workers)), max_batch_(std::max(1, max_batch)) {
  std::map<std::size_t, std::size_t> slot;  // group id → position in groups_
  for (ScheduledJob& j : jobs) {
    remaining_cost_ += j.cost;
    const auto [it, added] = slot.emplace(j.group, groups_.size());
    if (added) groups_.emplace_back();
    groups_[it->second].push_back(j);
  }
  for (auto& g : groups_) std::sort(g.begin(), g.end(), larger_first);
  head_.assign(groups_.size(), 0);
}

std::vector<std::size_t> JobDispatcher::next() {
  std::vector<std::size_t> batch;
  // The group whose largest remaining job is the largest overall.
  std::size_t best = groups_.size();
  for (std::size_t g = 0; g < groups_.size(); ++g) {
    if (head_[g] == groups_[g].size()) continue;
    if (best == groups_.size() || larger_first(groups_[g][head_[g]], groups_[best][head_[best]])) best = g;
  }
  if (best == groups_.size()) return batch;
  const std::vector<ScheduledJob>& group = groups_[best];
  std::size_t& at = head_[best];
  const double limit = std::max(group[at].cost, remaining_cost_ / (2.0 * workers_));
  double cost = 0;
  while (at < group.size() && static_cast<int>(batch.size()) < max_batch_ &&
         (batch.empty() || cost + group[at].cost <= limit)) {
    cost += group[at].cost;
    batch.push_back(group[at].index);
    ++at;
  }
  left_ -= batch.size();
  remaining_cost_ = left_ == 0 ? 0 : std::max(0.0, remaining_cost_ - cost);
  return batch;
}

std::vector<std::vector<std::size_t>> partition_lpt(const std::vector<double>& costs, int shards) {
  if (shards < 1) fail("cannot split jobs into {} shards", shards);
  std::vector<std::size_t> order(costs.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return costs[a] > costs[b]; });
  std::vector<double> load(static_cast<std::size_t>(shards), 0.0);
  std::vector<std::vector<std::size_t>> out(static_cast<std::size_t>(shards));
  for (std::size_t i : order) {
    const auto least = static_cast<std::size_t>(std::min_element(load.begin(), load.end()) - load.begin());
    load[least] += costs[i];
    out[least].push_back(i);
  }
  for (auto& s : out) std::sort(s.begin(), s.end());
  return out;
}

}  // namespace kvlab
