#include "kvlab/runner/model_step.hpp"

#include <filesystem>

#include "kvlab/core/error.hpp"

namespace kvlab {

ModelInTheLoop::ModelInTheLoop(ModelStepOptions options)
    : options_(std::move(options)), weights_(load_model(options_.model_path)) {}

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
  record.decode = decode_compare(weights_, dump.read_tokens(), compressor, d, &dump);
}

std::string ModelInTheLoop::identity_key(const ModelStepOptions& options) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(options.model_path, ec);
  return fmt::format("model={}|{}|{}|{}", std::filesystem::path(options.model_path).filename().string(),
                     ec ? 0 : size, options.free_running, options.steps);
}

}  // namespace kvlab
