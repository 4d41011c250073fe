#pragma once
// What running one job yields, as every writer and front end sees it: the
// job's identity, its outcome, the replay's results and summaries, and
// optionally the model-in-the-loop comparison. Result files are formatted
// from records only (result_fields.hpp).
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "kvlab/model/decode_compare.hpp"
#include "kvlab/replay/job_summary.hpp"

namespace kvlab {

struct JobIdentity {
  std::string job_id;  // stable hash of the resolved spec, dump and replay settings
  std::string dump;    // as given by the user / sweep file
  std::string method;
  std::string family;
  std::string preset;  // the preset whose canonical spec equals `spec`, or ""
  std::string spec;    // canonical
  std::map<std::string, std::string> params;  // every parameter that applies, canonical text
};

struct JobTiming {
  double replay_cpu_s = 0;  // summed over the job's blocks (thread-seconds)
  double batch_wall_s = 0;  // wall time of the batch of jobs that shared its layer reads
  int batch_jobs = 1;       // jobs in that batch
  double model_s = -1;      // model in the loop (wall); < 0: none
  int threads = 1;
};

struct JobRecord {
  JobIdentity identity;
  std::string error;  // empty: the job succeeded
  bool file_error = false;  // the error is about a file (kvlab::FileError), not the job's spec or settings
  JobResult result;   // per-block results (layers.csv)
  JobSummary summary;
  std::vector<StepSummary> steps;
  std::optional<DecodeResult> decode;  // model in the loop
  JobTiming timing;

  bool ok() const { return error.empty(); }
};

}  // namespace kvlab
