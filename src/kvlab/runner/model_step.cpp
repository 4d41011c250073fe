#include "kvlab/runner/model_step.hpp"

#include <filesystem>
#include <optional>

#include "kvlab/core/error.hpp"
#include "kvlab/model/decode_compare.hpp"

namespace kvlab {

struct ModelInTheLoop::CachedReference {
  std::string dump_path;
  std::optional<ReferenceRun> run;
  std::string error;  // the reference failed (e.g. its K/V check) with this message
};

ModelInTheLoop::ModelInTheLoop(ModelStepOptions options)
    : options_(std::move(options)), weights_(load_model(options_.model_path)) {}

ModelInTheLoop::~ModelInTheLoop() = default;

void ModelInTheLoop::run(const Job& job, const DumpReader& dump, const Compressor& compressor, int threads,
                         JobRecord& record) const {
  if (!dump.info().has_tokens)
    fail("{}: model in the loop needs the dump's /tokens, but it has none", dump.info().path);
  DecodeOptions d;
  d.prompt_len = dump.info().prompt_len;
  d.steps = options_.steps;
  d.free_running = options_.free_running;
  d.threads = threads;
  d.seed = job.replay.seed;
  if (!cached_ || cached_->dump_path != dump.info().path) {
    cached_ = std::make_unique<CachedReference>();
    cached_->dump_path = dump.info().path;
    try {
      cached_->run = run_reference(weights_, dump.read_tokens(), d, &dump, options_.kv_check);
    } catch (const Error& e) {
      cached_->error = e.what();
    }
  }
  if (!cached_->run) throw Error(cached_->error);
  record.decode = compare_to_reference(weights_, *cached_->run, compressor, d);
}

std::string ModelInTheLoop::identity_key(const ModelStepOptions& options) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(options.model_path, ec);
  return fmt::format("model={}|{}|{}|{}", std::filesystem::path(options.model_path).filename().string(),
                     ec ? 0 : size, options.free_running, options.steps);
}

}  // namespace kvlab
