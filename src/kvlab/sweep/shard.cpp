#include "kvlab/sweep/shard.hpp"

#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "kvlab/core/error.hpp"
#include "kvlab/report/results_writer.hpp"
#include "kvlab/runner/job_cost.hpp"
#include "kvlab/runner/job_schedule.hpp"

namespace kvlab {

namespace fs = std::filesystem;

std::string ShardId::text() const { return fmt::format("{}/{}", index, count); }

namespace {

long long to_integer(const std::string& text, const std::string& what) {
  try {
    std::size_t used = 0;
    const long long v = std::stoll(text, &used);
    if (used == text.size()) return v;
  } catch (const std::exception&) {
  }
  fail("{}: '{}' is not an integer", what, text);
}

ShardId slurm_shard(const std::function<std::optional<std::string>(const std::string&)>& env) {
  auto need = [&](const std::string& name) {
    const auto v = env(name);
    if (!v) fail("--shard auto: {} is not set (not a Slurm array task? use --shard I/N)", name);
    return to_integer(*v, name);
  };
  const long long id = need("SLURM_ARRAY_TASK_ID"), count = need("SLURM_ARRAY_TASK_COUNT");
  const long long min = need("SLURM_ARRAY_TASK_MIN");
  const auto step_text = env("SLURM_ARRAY_TASK_STEP");
  const long long step = step_text ? to_integer(*step_text, "SLURM_ARRAY_TASK_STEP") : 1;
  if (count < 1 || step < 1) fail("--shard auto: SLURM_ARRAY_TASK_COUNT={} STEP={} are not positive", count, step);
  if (id < min || (id - min) % step != 0 || (id - min) / step >= count)
    fail("--shard auto: array task {} is not one of {} tasks from {} in steps of {} (use a range such as "
         "--array=1-{}, or --shard I/N)",
         id, count, min, step, count);
  return ShardId{static_cast<int>((id - min) / step + 1), static_cast<int>(count)};
}

}  // namespace

ShardId parse_shard(const std::string& text,
                    const std::function<std::optional<std::string>(const std::string&)>& env) {
  if (text == "auto") return slurm_shard(env);
  const std::size_t slash = text.find('/');
  if (slash == std::string::npos) fail("--shard: expected I/N (e.g. 2/8) or auto, got '{}'", text);
  const long long i = to_integer(text.substr(0, slash), "--shard");
  const long long n = to_integer(text.substr(slash + 1), "--shard");
  if (n < 1 || i < 1 || i > n) fail("--shard: {} is not a shard: need 1 <= I <= N", text);
  return ShardId{static_cast<int>(i), static_cast<int>(n)};
}

ShardId parse_shard(const std::string& text) {
  return parse_shard(text, [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    return v ? std::optional<std::string>(v) : std::nullopt;
  });
}

std::vector<double> plan_job_costs(const SweepPlan& plan) {
  std::vector<double> costs;
  for (const SweepJob& j : plan.jobs) {
    const PlannedDump& d = plan.dumps[j.dump_index];
    costs.push_back(d.error.empty() ? estimated_job_cost(j.job, d.info) : 0.0);
  }
  return costs;
}

std::vector<std::size_t> shard_jobs(const SweepPlan& plan, const ShardId& shard) {
  return partition_lpt(plan_job_costs(plan), shard.count)[static_cast<std::size_t>(shard.index - 1)];
}

void write_shard_record(const std::string& dir, const ShardRecord& record) {
  YAML::Emitter y;
  y << YAML::Comment("a shard of a kvlab sweep: join the shard folders with `kvlab merge OUT DIR...`");
  y << YAML::BeginMap;
  y << YAML::Key << "plan_hash" << YAML::Value << record.plan_hash;
  y << YAML::Key << "shard" << YAML::Value << record.shard.index;
  y << YAML::Key << "shards" << YAML::Value << record.shard.count;
  y << YAML::Key << "jobs" << YAML::Value << YAML::Flow << record.job_ids;
  y << YAML::EndMap;
  write_file_atomically((fs::path(dir) / kShardFile).string(), std::string(y.c_str()) + "\n");
}

std::optional<ShardRecord> read_shard_record(const std::string& dir) {
  const fs::path path = fs::path(dir) / kShardFile;
  if (!fs::exists(path)) return std::nullopt;
  try {
    const YAML::Node n = YAML::LoadFile(path.string());
    ShardRecord r;
    r.plan_hash = n["plan_hash"].as<std::string>();
    r.shard = ShardId{n["shard"].as<int>(), n["shards"].as<int>()};
    r.job_ids = n["jobs"].as<std::vector<std::string>>();
    return r;
  } catch (const YAML::Exception& e) {
    fail("{}: not a shard record: {}", path.string(), e.what());
  }
}

void check_shard_folder(const std::string& dir, const std::string& plan_hash, const std::optional<ShardId>& shard) {
  const auto existing = read_shard_record(dir);
  if (!existing) return;
  const std::string path = (fs::path(dir) / kShardFile).string();
  if (existing->plan_hash != plan_hash)
    fail("{}: the folder holds a shard of another plan (hash {}, this plan {}); use another --out", path,
         existing->plan_hash, plan_hash);
  if (!shard)
    fail("{}: the folder holds shard {}; run it with --shard {}, or merge the shards with `kvlab merge`", path,
         existing->shard.text(), existing->shard.text());
  if (existing->shard.index != shard->index || existing->shard.count != shard->count)
    fail("{}: the folder holds shard {}, not {}", path, existing->shard.text(), shard->text());
}

}  // namespace kvlab
