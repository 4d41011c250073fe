#pragma once
// The rows of summary.csv, layers.csv and steps.csv (DESIGN.md §6; columns in
// docs/outputs.md), shared by `kvlab run` and `kvlab sweep`. Wall time is not
// in these files (it would make them differ between identical runs); it goes
// to timing.csv.
#include <map>
#include <string>
#include <vector>

#include "kvlab/compressors/registry.hpp"
#include "kvlab/replay/job_summary.hpp"

namespace kvlab {

struct JobIdentity {
  std::string job_id;  // stable hash of the resolved spec, dump and replay settings
  std::string dump;    // as given by the user / sweep file
  std::string method;
  std::string family;
  std::string spec;    // canonical
  std::map<std::string, std::string> params;  // every parameter, canonical text
};

JobIdentity make_identity(const ResolvedSpec& spec, const std::string& dump_label, const std::string& dump_path,
                          const ReplayOptions& opts);

std::vector<std::string> summary_header(const std::vector<std::string>& param_names, bool decode = false);
std::vector<std::string> summary_row(const JobIdentity& id, const std::vector<std::string>& param_names,
                                     const JobSummary& s);
std::vector<std::string> failed_summary_row(const JobIdentity& id, const std::vector<std::string>& param_names,
                                            const std::string& error);

std::vector<std::string> layers_header();
std::vector<std::vector<std::string>> layers_rows(const JobIdentity& id, const JobResult& job);

std::vector<std::string> steps_header();
std::vector<std::vector<std::string>> steps_rows(const JobIdentity& id, const std::vector<StepSummary>& steps);

// Model in the loop: extra summary columns and decode_steps.csv rows (the
// columns of `kvlab decode --csv`, prefixed by the job's identity).
struct DecodeResult;
const std::vector<std::string>& decode_summary_columns();
std::vector<std::string> decode_summary_fields(const DecodeResult& r);
std::vector<std::string> decode_steps_header(int num_layers);
std::vector<std::vector<std::string>> decode_steps_rows(const JobIdentity& id, const DecodeResult& r);

// Sorted union of the parameter names of the given methods.
std::vector<std::string> parameter_columns(const std::vector<const MethodInfo*>& methods);

}  // namespace kvlab
