#pragma once
// Static shards of a sweep for schedulers without MPI (Slurm job arrays,
// plain batch queues): `kvlab sweep FILE --shard I/N --out DIR_I` runs the
// I-th of N deterministic, cost-balanced parts of the plan (LPT over the
// estimated job costs, runner/job_schedule.hpp); `kvlab merge` joins the
// folders. Each shard folder records the plan hash and its shard in
// shard.yaml, so shards of different plans are never mixed.
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "kvlab/sweep/sweep_plan.hpp"

namespace kvlab {

struct ShardId {
  int index = 1;  // 1-based
  int count = 1;
  std::string text() const;  // "2/3"
};

// "I/N" (1 ≤ I ≤ N) or "auto": the Slurm array task of this process,
// (SLURM_ARRAY_TASK_ID − SLURM_ARRAY_TASK_MIN) / SLURM_ARRAY_TASK_STEP + 1 of
// SLURM_ARRAY_TASK_COUNT. `env` looks a variable up (nullopt: unset).
ShardId parse_shard(const std::string& text,
                    const std::function<std::optional<std::string>(const std::string&)>& env);
ShardId parse_shard(const std::string& text);  // with the process environment

// The plan indices of a shard's jobs, ascending (plan order).
std::vector<std::size_t> shard_jobs(const SweepPlan& plan, const ShardId& shard);

// Every job's estimated cost (0 for a dump that cannot be read).
std::vector<double> plan_job_costs(const SweepPlan& plan);

// What a folder's shard.yaml says.
struct ShardRecord {
  std::string plan_hash;
  ShardId shard;
  std::vector<std::string> job_ids;  // this shard's jobs, plan order
};

inline constexpr const char* kShardFile = "shard.yaml";

void write_shard_record(const std::string& dir, const ShardRecord& record);
std::optional<ShardRecord> read_shard_record(const std::string& dir);  // nullopt: the folder has none

// Refuses to run shard `shard` of `plan` into a folder that holds another
// shard or plan (or, for shard = nullopt, any shard).
void check_shard_folder(const std::string& dir, const std::string& plan_hash, const std::optional<ShardId>& shard);

}  // namespace kvlab
