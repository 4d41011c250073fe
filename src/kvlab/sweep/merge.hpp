#pragma once
// Joins the results folders of one sweep plan's shards (or of any runs of
// the same plan) into one folder identical to a single-process sweep: every
// results file with each job's rows from the folder that finished it, in
// plan order, and the plan's config.resolved.yaml. Folders of different plans
// (plan hash) are refused; jobs no folder finished are listed, as are failed
// jobs and shards not given. Writes nothing over existing results unless told.
#include <string>
#include <vector>

namespace kvlab {

struct MergeOptions {
  std::string out;
  std::vector<std::string> dirs;
  bool overwrite = false;
};

struct MergedJob {
  std::string job_id, dump, spec;
  std::string error;  // failed jobs: the reason from summary.csv
};

struct MergeOutcome {
  int jobs = 0;  // in the plan
  int ok = 0;
  std::vector<MergedJob> failed, missing;
  std::vector<std::string> missing_shards;  // "2/8"
  std::string plan_hash;
};

MergeOutcome merge_results(const MergeOptions& options);

}  // namespace kvlab
