#include "kvlab/sweep/merge.hpp"

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "kvlab/core/csv.hpp"
#include "kvlab/core/error.hpp"
#include "kvlab/report/result_fields.hpp"
#include "kvlab/report/results_writer.hpp"
#include "kvlab/sweep/shard.hpp"

namespace kvlab {

namespace fs = std::filesystem;

namespace {

constexpr const char* kConfigFile = "config.resolved.yaml";

struct PlanJob {
  std::string id, dump, spec;
};

struct Folder {
  std::string dir;
  std::string config_text;
  std::string plan_hash;
  std::vector<PlanJob> jobs;
  std::optional<ShardRecord> shard;
  std::map<std::string, FileRows> files;  // results file → its rows
};

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Folder read_folder(const std::string& dir) {
  Folder f;
  f.dir = dir;
  if (!fs::is_directory(dir)) fail("{}: no such folder", dir);
  const fs::path config = fs::path(dir) / kConfigFile;
  if (!fs::exists(config)) fail("{}: no {} (not the results folder of a kvlab sweep)", dir, kConfigFile);
  f.config_text = read_text(config);
  try {
    const YAML::Node n = YAML::Load(f.config_text);
    if (!n["plan_hash"])
      fail("{}: no plan_hash (written by an older kvlab); rerun it with this one", config.string());
    f.plan_hash = n["plan_hash"].as<std::string>();
    for (const auto& j : n["jobs"])
      f.jobs.push_back({j["id"].as<std::string>(), j["dump"].as<std::string>(), j["spec"].as<std::string>()});
  } catch (const YAML::Exception& e) {
    fail("{}: cannot read: {}", config.string(), e.what());
  }
  f.shard = read_shard_record(dir);
  if (f.shard && f.shard->plan_hash != f.plan_hash)
    fail("{}: shard.yaml names plan {} but config.resolved.yaml plan {}", dir, f.shard->plan_hash, f.plan_hash);
  for (const ResultTable& t : result_tables()) {
    const fs::path path = fs::path(dir) / t.file;
    if (fs::exists(path)) f.files.emplace(t.file, read_file_rows(path.string()));
  }
  if (!f.files.count("summary.csv")) fail("{}: no summary.csv", dir);
  return f;
}

void check_same_plan(const std::vector<Folder>& folders) {
  const Folder& first = folders.front();
  for (const Folder& f : folders) {
    if (f.plan_hash != first.plan_hash)
      fail("{}: results of another plan (plan hash {}; {} has {}): refusing to merge them", f.dir, f.plan_hash,
           first.dir, first.plan_hash);
    for (const auto& [file, rows] : first.files) {
      const auto it = f.files.find(file);
      if (it == f.files.end()) fail("{}: no {} ({} has one)", f.dir, file, first.dir);
      if (it->second.header != rows.header) fail("{}: {} has other columns than in {}", f.dir, file, first.dir);
    }
  }
}

// Shards given twice are refused; shards not given are listed.
std::vector<std::string> check_shards(const std::vector<Folder>& folders) {
  std::map<int, std::string> given;
  int count = 0;
  for (const Folder& f : folders) {
    if (!f.shard) continue;
    if (count != 0 && f.shard->shard.count != count)
      fail("{}: shard {} of a split into {} shards, others of {}", f.dir, f.shard->shard.text(), f.shard->shard.count,
           count);
    count = f.shard->shard.count;
    const auto [it, added] = given.emplace(f.shard->shard.index, f.dir);
    if (!added) fail("{} and {} both hold shard {}", it->second, f.dir, f.shard->shard.text());
  }
  std::vector<std::string> missing;
  for (int i = 1; count > 0 && i <= count; ++i)
    if (!given.count(i)) missing.push_back(ShardId{i, count}.text());
  return missing;
}

std::string summary_error(const std::string& header, const std::string& line) {
  const auto names = csv_split(header);
  const auto cells = csv_split(line);
  for (std::size_t i = 0; i < names.size() && i < cells.size(); ++i)
    if (names[i] == "error") return cells[i];
  return "";
}

}  // namespace

MergeOutcome merge_results(const MergeOptions& options) {
  if (options.dirs.empty()) fail("merge: no folders given");
  std::vector<Folder> folders;
  for (const std::string& dir : options.dirs) {
    if (fs::exists(options.out) && fs::exists(dir) && fs::equivalent(options.out, dir))
      fail("{}: the output folder is one of the folders to merge", options.out);
    folders.push_back(read_folder(dir));
  }
  check_same_plan(folders);
  MergeOutcome outcome;
  outcome.plan_hash = folders.front().plan_hash;
  outcome.missing_shards = check_shards(folders);

  // Which folder holds each job: the first that finished it, else the first
  // where it failed.
  const std::vector<PlanJob>& plan = folders.front().jobs;
  outcome.jobs = static_cast<int>(plan.size());
  std::map<std::string, std::size_t> ok_in, failed_in;
  std::map<std::string, std::string> error_of;
  for (std::size_t f = 0; f < folders.size(); ++f) {
    for (const std::string& id : finished_job_ids(folders[f].files.at("summary.csv"))) ok_in.emplace(id, f);
    const FileRows& summary = folders[f].files.at("summary.csv");
    for (const auto& [id, line] : summary.rows)
      if (!ok_in.count(id) && failed_in.emplace(id, f).second) error_of[id] = summary_error(summary.header, line);
  }
  std::map<std::string, std::size_t> source;
  std::vector<std::string> order;
  for (const PlanJob& j : plan) {
    order.push_back(j.id);
    if (auto it = ok_in.find(j.id); it != ok_in.end()) {
      source[j.id] = it->second;
      ++outcome.ok;
    } else if (auto jt = failed_in.find(j.id); jt != failed_in.end()) {
      source[j.id] = jt->second;
      outcome.failed.push_back({j.id, j.dump, j.spec, error_of[j.id]});
    } else {
      outcome.missing.push_back({j.id, j.dump, j.spec, ""});
    }
  }

  // The output folder: never over existing results unless told.
  std::error_code ec;
  fs::create_directories(options.out, ec);
  if (ec) fail("{}: cannot create: {}", options.out, ec.message());
  if (!options.overwrite) {
    std::vector<std::string> names{kConfigFile};
    for (const ResultTable& t : result_tables()) names.push_back(t.file);
    for (const std::string& name : names)
      if (fs::exists(fs::path(options.out) / name))
        fail("{}: results already exist ({}); use --overwrite to replace them", options.out, name);
  }
  for (const ResultTable& t : result_tables())  // --overwrite: no file of an earlier merge stays behind
    if (!folders.front().files.count(t.file)) fs::remove(fs::path(options.out) / t.file, ec);
  for (const auto& [file, first_rows] : folders.front().files) {
    FileRows merged;
    merged.header = first_rows.header;
    for (std::size_t f = 0; f < folders.size(); ++f)
      for (const auto& row : folders[f].files.at(file).rows) {
        const auto it = source.find(row.first);
        if (it != source.end() && it->second == f) merged.rows.push_back(row);
      }
    write_file_atomically((fs::path(options.out) / file).string(), lines_in_job_order(merged, order));
  }
  // A shard record left by an earlier merge target would be stale.
  fs::remove(fs::path(options.out) / kShardFile, ec);
  write_file_atomically((fs::path(options.out) / kConfigFile).string(), folders.front().config_text);
  return outcome;
}

}  // namespace kvlab
