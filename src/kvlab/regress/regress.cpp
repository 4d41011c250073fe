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
#include "kvlab/replay/job_summary.hpp"

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
  MetricTable out;
  Progress progress("regress", static_cast<long long>(config.cases.size()), !quiet, "cases");
  for (const RegressCase& rc : config.cases) {
    const DumpReader reader(rc.dump);
    const auto c = Registry::global().build(rc.compressor);
    ReplayOptions o = rc.replay;
    o.threads = threads;
    o.attention = reader.info().has_queries;
    const Compressor* jobs[] = {c.get()};
    const JobResult r = replay_dump(reader, jobs, o).front();
    if (!r.ok()) fail("regression case '{}': {}", rc.name, r.error);
    const JobSummary s = summarize(r);
    auto& m = out[rc.name];
    m["compressed_bits"] = static_cast<double>(s.bits.total());
    m["bits_codes"] = static_cast<double>(s.bits.codes);
    m["bits_metadata"] = static_cast<double>(s.bits.metadata);
    m["bits_sparse"] = static_cast<double>(s.bits.sparse);
    m["bits_lowrank"] = static_cast<double>(s.bits.lowrank);
    m["bits_fp16"] = static_cast<double>(s.bits.fp16_buffer);
    m["bits_index"] = static_cast<double>(s.bits.index);
    m["compression_ratio"] = s.compression_ratio;
    m["k_rel_err_global"] = s.k_rel_err_global;
    m["v_rel_err_global"] = s.v_rel_err_global;
    m["k_max_abs_err"] = s.k_max_abs_err;
    m["v_max_abs_err"] = s.v_max_abs_err;
    m["attn_out_rel"] = s.attn_out_rel;
    m["attn_kl"] = s.attn_kl;
    m["dropped_mass"] = s.dropped_mass;
    progress.advance();
  }
  progress.finish();
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
