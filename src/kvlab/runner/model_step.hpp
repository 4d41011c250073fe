#pragma once
// The model in the loop as a step of the job runner: after a job's replay,
// the same kvlab-model decodes the dump's recorded tokens twice, with a
// reference cache and with the job's compressor (model/decode_compare.hpp),
// and the comparison goes into the job's record (decode_* columns,
// decode_steps.csv).
#include <string>

#include "kvlab/model/model_file.hpp"
#include "kvlab/runner/job_runner.hpp"

namespace kvlab {

struct ModelStepOptions {
  std::string model_path;
  bool free_running = false;  // teacher (default) | free
  int steps = -1;             // -1: decode_compare's default
};

class ModelInTheLoop : public JobStep {
 public:
  explicit ModelInTheLoop(ModelStepOptions options);  // loads and validates the model once

  int num_layers() const { return weights_.config.num_layers; }
  void run(const Job& job, const DumpReader& dump, const Compressor& compressor, int threads,
           JobRecord& record) const override;

  // What the model and its settings add to a job's identity.
  static std::string identity_key(const ModelStepOptions& options);

 private:
  ModelStepOptions options_;
  ModelWeights weights_;
};

}  // namespace kvlab
