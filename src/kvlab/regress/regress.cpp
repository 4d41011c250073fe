#include "kvlab/regress/regress.hpp"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "kvlab/compressors/registry.hpp"
#include "kvlab/core/csv.hpp"
#include "kvlab/core/error.hpp"
#include "kvlab/io/dump_reader.hpp"
#include "kvlab/report/job_identity.hpp"
#include "kvlab/report/result_fields.hpp"
#include "kvlab/runner/job_runner.hpp"

namespace kvlab {

namespace fs = std::filesystem;

bool Tolerance::allows(double baseline, double now) const {
  if (std::isnan(baseline) || std::isnan(now)) return std::isnan(baseline) && std::isnan(now);
  return std::abs(now - baseline) <= abs + rel * std::abs(baseline);
}

const Tolerance& RegressConfig::tolerance(const std::string& metric) const {
  auto it = tolerances.find(metric);
  return it == tolerances.end() ? default_tolerance : it->second;
}

namespace {

Tolerance parse_tolerance(const YAML::Node& n, const std::string& where) {
  Tolerance t;
  for (const auto& kv : n) {
    const std::string k = kv.first.as<std::string>();
    if (k == "abs")
      t.abs = kv.second.as<double>();
    else if (k == "rel")
      t.rel = kv.second.as<double>();
    else
      fail("{}: unknown tolerance key '{}' (abs, rel)", where, k);
  }
  return t;
}

}  // namespace

RegressConfig load_regress_config(const std::string& path) {
  if (!fs::exists(path)) fail("{}: no such regression config", path);
  RegressConfig c;
  c.file = path;
  const fs::path dir = fs::absolute(path).parent_path();
  auto resolve = [&](const std::string& p) { return (fs::path(p).is_absolute() ? fs::path(p) : dir / p).string(); };
  try {
    const YAML::Node root = YAML::LoadFile(path);
    for (const auto& kv : root) {
      const std::string k = kv.first.as<std::string>();
      if (k != "baseline" && k != "tolerances" && k != "cases")
        fail("{}: unknown key '{}' (baseline, tolerances, cases)", path, k);
    }
    if (!root["baseline"]) fail("{}: missing 'baseline'", path);
    c.baseline = resolve(root["baseline"].as<std::string>());
    if (const YAML::Node t = root["tolerances"]) {
      for (const auto& kv : t) {
        const std::string metric = kv.first.as<std::string>();
        const Tolerance tol = parse_tolerance(kv.second, path + ": tolerances." + metric);
        if (metric == "default")
          c.default_tolerance = tol;
        else
          c.tolerances[metric] = tol;
      }
    }
    if (!root["cases"] || !root["cases"].IsSequence()) fail("{}: 'cases' must be a list", path);
    for (const auto& n : root["cases"]) {
      RegressCase rc;
      for (const auto& kv : n) {
        const std::string k = kv.first.as<std::string>();
        if (k == "name")
          rc.name = kv.second.as<std::string>();
        else if (k == "dump")
          rc.dump = resolve(kv.second.as<std::string>());
        else if (k == "compressor")
          rc.compressor = kv.second.as<std::string>();
        else if (k == "layers")
          rc.replay.layers = kv.second.as<std::vector<int>>();
        else if (k == "eval_every")
          rc.replay.eval_every = kv.second.as<int>();
        else if (k == "max_steps")
          rc.replay.max_steps = kv.second.as<int>();
        else if (k == "seed")
          rc.replay.seed = kv.second.as<std::uint64_t>();
        else
          fail("{}: case '{}': unknown key '{}' (name, dump, compressor, layers, eval_every, max_steps, seed)", path,
               rc.name, k);
      }
      if (rc.name.empty() || rc.dump.empty() || rc.compressor.empty())
        fail("{}: every case needs name, dump and compressor", path);
      for (const auto& other : c.cases)
        if (other.name == rc.name) fail("{}: case name '{}' used twice", path, rc.name);
      Registry::global().resolve(rc.compressor);
      c.cases.push_back(rc);
    }
  } catch (const YAML::Exception& e) {
    fail("{}: {}", path, e.what());
  }
  return c;
}

MetricTable run_regress_cases(const RegressConfig& config, int threads, bool quiet) {
  std::vector<Job> jobs;
  long long blocks = 0;
  for (const RegressCase& rc : config.cases) {
    const DumpInfo info = DumpReader(rc.dump).info();
    ReplayOptions o = rc.replay;
    o.attention = info.has_queries;
    const ResolvedSpec spec = Registry::global().resolve(rc.compressor);
    jobs.push_back(Job{rc.dump, spec, o, make_identity(spec, rc.name, rc.dump, o)});
    blocks += job_blocks(jobs.back(), info);
  }
  Progress progress("regress", blocks, !quiet, "blocks");
  RunnerOptions ro;
  ro.threads = threads;
  ro.progress = &progress;
  CollectingSink sink;
  run_jobs(jobs, ro, sink);
  progress.finish();

  // The metrics are the summary columns declared `regress` (result_fields.cpp).
  std::vector<Field> metrics;
  for (const Field& f : result_table("summary.csv").fields(TableLayout{}))
    if (f.regress) metrics.push_back(f);
  MetricTable out;
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    const JobRecord& r = sink.records[i];
    if (!r.ok()) fail("regression case '{}': {}", config.cases[i].name, r.error);
    RowContext row;
    row.job = &r;
    for (const Field& f : metrics) out[config.cases[i].name][f.name] = field_number(f.get(row));
  }
  return out;
}

MetricTable read_baseline(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail("{}: cannot read the regression baseline (run `kvlab regress --update` to create it)", path);
  MetricTable t;
  std::string line;
  std::getline(in, line);
  if (line != "case,metric,value") fail("{}: expected header 'case,metric,value'", path);
  while (std::getline(in, line)) {
    const auto f = csv_split(line);
    if (f.size() != 3) fail("{}: malformed row '{}'", path, line);
    t[f[0]][f[1]] = f[2].empty() ? NAN : std::stod(f[2]);
  }
  return t;
}

void write_baseline(const std::string& path, const MetricTable& table) {
  std::string text = "case,metric,value\n";
  for (const auto& [name, metrics] : table)
    for (const auto& [metric, value] : metrics) text += csv_line({name, metric, csv_number(value)});
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path) << text;
}

std::vector<RegressDiff> compare_metrics(const RegressConfig& config, const MetricTable& baseline,
                                         const MetricTable& now) {
  std::vector<RegressDiff> diffs;
  for (const auto& [name, metrics] : now) {
    auto b = baseline.find(name);
    if (b == baseline.end()) {
      diffs.push_back({name, "*", NAN, NAN, "case missing from baseline"});
      continue;
    }
    for (const auto& [metric, value] : metrics) {
      auto bv = b->second.find(metric);
      if (bv == b->second.end()) {
        diffs.push_back({name, metric, NAN, value, "metric missing from baseline"});
        continue;
      }
      const Tolerance& tol = config.tolerance(metric);
      if (!tol.allows(bv->second, value))
        diffs.push_back({name, metric, bv->second, value, fmt::format("±{:g} + {:g}·|x|", tol.abs, tol.rel)});
    }
  }
  for (const auto& [name, metrics] : baseline)
    if (!now.count(name)) diffs.push_back({name, "*", NAN, NAN, "case in baseline but not in config"});
  return diffs;
}

}  // namespace kvlab
