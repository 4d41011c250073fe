#pragma once
// Expands a SweepConfig into jobs: every compressor entry becomes one or more
// resolved specs (a list-valued parameter is a Cartesian-product axis; `zip:`
// holds parameters whose lists vary together), crossed with every dump.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kvlab/compressors/registry.hpp"
#include "kvlab/io/dump_info.hpp"
#include "kvlab/runner/job.hpp"
#include "kvlab/runner/model_step.hpp"
#include "kvlab/sweep/sweep_config.hpp"

namespace kvlab {

struct SweepJob {
  std::size_t dump_index = 0;
  Job job;
};

struct PlannedDump {
  DumpInfo info;      // headers only
  std::string error;  // non-empty: the dump cannot be read; its jobs will fail with this
};

struct SweepPlan {
  SweepConfig config;
  std::vector<PlannedDump> dumps;
  std::vector<SweepJob> jobs;      // dump-major, then compressor entry order
  std::vector<std::string> param_columns;
  std::string out_dir;
  std::optional<ModelStepOptions> model;  // set when the sweep has `model:`
};

// Expands one compressor entry to spec texts (exposed for tests).
std::vector<std::string> expand_compressor_entry(const YAML::Node& entry, const std::string& where);

// Resolves every spec, opens every dump header and checks each job can run
// (queries/RoPE present). Throws kvlab::Error before any work is done for a
// bad sweep file or spec; a dump that cannot be read only fails its jobs.
SweepPlan make_sweep_plan(const SweepConfig& config, const std::string& out_override = "");

// The plan as YAML: kvlab version and git revision, settings, the plan hash,
// every job (in plan order: the order of the rows of every results file).
std::string resolved_plan_yaml(const SweepPlan& plan);

// A hash of what the results files of the plan hold: every job id in plan
// order (ids cover spec, dump name and size, replay settings, model) and the
// parameter columns. Shards and merges of one plan share it.
std::string plan_hash(const SweepPlan& plan);

// Job ids in plan order.
std::vector<std::string> plan_job_ids(const SweepPlan& plan);

}  // namespace kvlab
