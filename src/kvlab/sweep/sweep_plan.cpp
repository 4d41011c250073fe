#include "kvlab/sweep/sweep_plan.hpp"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <set>

#include "kvlab/core/build_info.hpp"
#include "kvlab/core/error.hpp"
#include "kvlab/core/hash.hpp"
#include "kvlab/io/dump_reader.hpp"
#include "kvlab/replay/replay_dump.hpp"
#include "kvlab/report/job_identity.hpp"

namespace kvlab {

namespace {

std::string scalar_text(const YAML::Node& n, const std::string& where) {
  if (n.IsScalar()) return n.Scalar();
  if (n.IsMap()) return format_spec_text(spec_text_from_yaml(n, where));  // a nested compressor
  fail("{}: expected a value or a list of values", where);
}

struct Axis {
  std::vector<std::string> names;
  std::vector<std::vector<std::string>> rows;  // each row: one value per name
};

}  // namespace

std::vector<std::string> expand_compressor_entry(const YAML::Node& entry, const std::string& where) {
  if (entry.IsScalar()) return {entry.Scalar()};
  if (!entry.IsMap()) fail("{}: a compressor is a spec string or a map with 'method'", where);
  std::string method;
  std::vector<std::pair<std::string, std::string>> fixed;
  std::vector<Axis> axes;
  for (const auto& kv : entry) {
    const std::string key = kv.first.as<std::string>();
    const YAML::Node& v = kv.second;
    const std::string at = where + "." + key;
    if (key == "method") {
      method = scalar_text(v, at);
    } else if (key == "zip") {
      if (!v.IsMap()) fail("{}: 'zip' must map parameter names to lists of equal length", at);
      Axis axis;
      std::size_t len = 0;
      std::vector<std::vector<std::string>> columns;
      for (const auto& z : v) {
        const std::string name = z.first.as<std::string>();
        if (!z.second.IsSequence()) fail("{}.{}: zip values must be lists", at, name);
        std::vector<std::string> col;
        for (const auto& item : z.second) col.push_back(scalar_text(item, at + "." + name));
        if (!axis.names.empty() && col.size() != len)
          fail("{}: zip lists differ in length ({} has {}, expected {})", at, name, col.size(), len);
        len = col.size();
        axis.names.push_back(name);
        columns.push_back(std::move(col));
      }
      for (std::size_t i = 0; i < len; ++i) {
        std::vector<std::string> row;
        for (const auto& col : columns) row.push_back(col[i]);
        axis.rows.push_back(std::move(row));
      }
      if (!axis.names.empty()) axes.push_back(std::move(axis));
    } else if (v.IsSequence()) {
      Axis axis{{key}, {}};
      for (const auto& item : v) axis.rows.push_back({scalar_text(item, at)});
      if (axis.rows.empty()) fail("{}: an empty list expands to no job", at);
      axes.push_back(std::move(axis));
    } else {
      fixed.emplace_back(key, scalar_text(v, at));
    }
  }
  if (method.empty()) fail("{}: missing 'method'", where);

  // Cartesian product over the axes, first axis slowest.
  std::vector<std::string> out;
  std::vector<std::size_t> idx(axes.size(), 0);
  while (true) {
    SpecText t{method, fixed};
    for (std::size_t a = 0; a < axes.size(); ++a)
      for (std::size_t n = 0; n < axes[a].names.size(); ++n) t.params.emplace_back(axes[a].names[n], axes[a].rows[idx[a]][n]);
    out.push_back(format_spec_text(t));
    std::size_t a = axes.size();
    while (a > 0) {
      --a;
      if (++idx[a] < axes[a].rows.size()) break;
      idx[a] = 0;
      if (a == 0) return out;
    }
    if (axes.empty()) return out;
  }
}

SweepPlan make_sweep_plan(const SweepConfig& config, const std::string& out_override) {
  SweepPlan plan;
  plan.config = config;
  plan.out_dir = !out_override.empty() ? out_override : !config.out.empty() ? config.out : "results/" + config.name;

  const Registry& registry = Registry::global();
  std::vector<ResolvedSpec> specs;
  std::set<std::string> seen;
  for (std::size_t i = 0; i < config.compressors.size(); ++i) {
    const std::string where = fmt::format("{}: compressors[{}]", config.file, i);
    for (const std::string& text : expand_compressor_entry(config.compressors[i], where)) {
      ResolvedSpec r;
      try {
        r = registry.resolve(text);
        registry.build(r);  // constraints between parameters
      } catch (const Error& e) {
        fail("{}: {}", where, e.what());
      }
      if (seen.insert(r.canonical).second) specs.push_back(std::move(r));  // duplicates run once
    }
  }

  for (const std::string& path : config.dumps) {
    PlannedDump d;
    try {
      d.info = DumpReader(path).info();
    } catch (const Error& e) {
      d.error = e.what();
    }
    plan.dumps.push_back(std::move(d));
  }
  std::string model_key;
  if (!config.model.empty()) {
    plan.model = ModelStepOptions{config.model, config.decode_free, config.decode_steps,
                                  KvCheckOptions{config.decode_kv_check, config.decode_kv_rtol}};
    model_key = ModelInTheLoop::identity_key(*plan.model);
    for (const PlannedDump& d : plan.dumps)
      if (d.error.empty() && !d.info.has_tokens)
        fail("{}: model in the loop needs the dump's /tokens, but {} has none", config.file, d.info.path);
  }

  std::vector<const MethodInfo*> methods;
  for (const auto& s : specs) methods.push_back(s.method);
  plan.param_columns = parameter_columns(methods);
  for (std::size_t d = 0; d < plan.dumps.size(); ++d) {
    const PlannedDump& dump = plan.dumps[d];
    if (dump.error.empty()) selected_layers(dump.info, config.replay);  // layer indices in range
    for (const auto& s : specs) {
      if (dump.error.empty()) check_compatible(dump.info, *registry.build(s), config.replay);
      const std::string label = std::filesystem::path(config.dumps[d]).filename().string();
      Job job{config.dumps[d], s, config.replay, make_identity(s, label, config.dumps[d], config.replay, model_key)};
      plan.jobs.push_back({d, std::move(job)});
    }
  }
  return plan;
}

std::string resolved_plan_yaml(const SweepPlan& plan) {
  YAML::Emitter y;
  const ReplayOptions& r = plan.config.replay;
  y << YAML::BeginMap;
  y << YAML::Key << "name" << YAML::Value << plan.config.name;
  y << YAML::Key << "version" << YAML::Value << plan.config.version;
  y << YAML::Key << "kvlab_version" << YAML::Value << build_info::version;
  y << YAML::Key << "git_revision" << YAML::Value << build_info::git_revision();
  y << YAML::Key << "source" << YAML::Value << plan.config.file;
  y << YAML::Key << "dumps" << YAML::Value << YAML::BeginSeq;
  for (const auto& d : plan.config.dumps) y << d;
  y << YAML::EndSeq;
  y << YAML::Key << "replay" << YAML::Value << YAML::BeginMap;
  y << YAML::Key << "layers" << YAML::Value << YAML::Flow << r.layers;
  y << YAML::Key << "eval_every" << YAML::Value << r.eval_every;
  y << YAML::Key << "max_steps" << YAML::Value << r.max_steps;
  y << YAML::EndMap;
  y << YAML::Key << "metrics" << YAML::Value << YAML::Flow << YAML::BeginSeq << "reconstruction";
  if (r.attention) y << "attention";
  y << YAML::EndSeq;
  y << YAML::Key << "seed" << YAML::Value << r.seed;
  if (!plan.config.model.empty()) {
    y << YAML::Key << "model" << YAML::Value << plan.config.model;
    y << YAML::Key << "decode" << YAML::Value << YAML::Flow << YAML::BeginMap << YAML::Key << "mode" << YAML::Value
      << (plan.config.decode_free ? "free" : "teacher") << YAML::Key << "steps" << YAML::Value
      << plan.config.decode_steps << YAML::Key << "kv_rtol" << YAML::Value;
    if (plan.config.decode_kv_check)
      y << plan.config.decode_kv_rtol;
    else
      y << "off";
    y << YAML::EndMap;
  }
  y << YAML::Key << "plan_hash" << YAML::Value << plan_hash(plan);
  y << YAML::Key << "jobs" << YAML::Value << YAML::BeginSeq;
  for (const auto& j : plan.jobs) {
    y << YAML::Flow << YAML::BeginMap << YAML::Key << "id" << YAML::Value << j.job.identity.job_id << YAML::Key
      << "dump" << YAML::Value << j.job.identity.dump << YAML::Key << "spec" << YAML::Value << j.job.spec.canonical
      << YAML::EndMap;
  }
  y << YAML::EndSeq << YAML::EndMap;
  return std::string(y.c_str()) + "\n";
}

std::vector<std::string> plan_job_ids(const SweepPlan& plan) {
  std::vector<std::string> ids;
  for (const SweepJob& j : plan.jobs) ids.push_back(j.job.identity.job_id);
  return ids;
}

std::string plan_hash(const SweepPlan& plan) {
  return hex_hash(fmt::format("jobs={}|params={}|model={}", fmt::join(plan_job_ids(plan), ","),
                              fmt::join(plan.param_columns, ","), plan.model.has_value()));
}

}  // namespace kvlab
