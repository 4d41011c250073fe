#pragma once
// The model in the loop as a step of the job runner: after a job's replay,
// the same kvlab-model decodes the dump's recorded tokens twice, with a
// reference cache and with the job's compressor (model/decode_compare.hpp),
// and the comparison goes into the job's record (decode_* columns,
// decode_steps.csv).
//
// The reference run depends only on the dump (not on the compressor, the seed
// or the thread count), so it is computed once per dump and shared by that
// dump's jobs (the runner keeps a dump's jobs together); a reference whose
// K/V check failed fails every job on that dump with the same message.
#include <memory>
#include <string>

#include "kvlab/model/model_file.hpp"
#include "kvlab/model/reference_run.hpp"
#include "kvlab/runner/job_runner.hpp"

namespace kvlab {

struct ModelStepOptions {
  std::string model_path;
  bool free_running = false;  // teacher (default) | free
  int steps = -1;             // -1: decode_compare's default
  KvCheckOptions kv_check;    // the reference's keys/values against the dump
};

class ModelInTheLoop : public JobStep {
 public:
  explicit ModelInTheLoop(ModelStepOptions options);  // loads and validates the model once
  ~ModelInTheLoop() override;

  int num_layers() const { return weights_.config.num_layers; }
  // Not thread-safe: the runner calls it for one job at a time.
  void run(const Job& job, const DumpReader& dump, const Compressor& compressor, int threads,
           JobRecord& record) const override;

  // What the model and its settings add to a job's identity (the K/V check's
  // tolerance changes no number, so it is not part of it).
  static std::string identity_key(const ModelStepOptions& options);

 private:
  struct CachedReference;
  ModelStepOptions options_;
  ModelWeights weights_;
  mutable std::unique_ptr<CachedReference> cached_;  // the last dump's reference run
};

}  // namespace kvlab
