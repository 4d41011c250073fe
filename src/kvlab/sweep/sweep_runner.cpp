#include "kvlab/sweep/sweep_runner.hpp"

#include <omp.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include "kvlab/core/error.hpp"
#include "kvlab/io/dump_reader.hpp"
#include "kvlab/replay/replay_dump.hpp"
#include "kvlab/report/results_writer.hpp"

namespace kvlab {

namespace fs = std::filesystem;

namespace {

void write_resolved_config(const SweepPlan& plan) {
  const fs::path path = fs::path(plan.out_dir) / "config.resolved.yaml";
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp);
    out << resolved_plan_yaml(plan);
    if (!out) fail("{}: cannot write", tmp.string());
  }
  fs::rename(tmp, path);
}

// Model in the loop for one job: the compressed model vs the reference on the
// dump's recorded tokens (and, as a consistency check, its keys/values).
DecodeResult decode_job(const SweepPlan& plan, const DumpReader& reader, const Compressor& compressor,
                        const ReplayOptions& replay) {
  DecodeOptions d;
  d.prompt_len = reader.info().prompt_len;
  d.steps = plan.config.decode_steps;
  d.free_running = plan.config.decode_free;
  d.threads = replay.threads;
  d.seed = replay.seed;
  return decode_compare(*plan.model, reader.read_tokens(), compressor, d, &reader);
}

}  // namespace

SweepOutcome run_sweep(const SweepPlan& plan, const SweepRunOptions& options) {
  const fs::path summary = fs::path(plan.out_dir) / "summary.csv";
  if (!options.resume && !options.overwrite && fs::exists(summary))
    fail("{}: results already exist; use --resume to finish them or --overwrite to start over", plan.out_dir);

  ReplayOptions replay = plan.config.replay;
  if (options.threads > 0) replay.threads = options.threads;
  if (replay.threads <= 0) replay.threads = omp_get_max_threads();
  const int chunk = options.chunk > 0 ? options.chunk : 4 * replay.threads;

  ResultsWriter writer(plan.out_dir, plan.param_columns, options.resume,
                       plan.model ? plan.model->config.num_layers : 0);
  write_resolved_config(plan);

  SweepOutcome outcome;
  outcome.jobs = static_cast<int>(plan.jobs.size());
  long long total_blocks = 0;
  std::vector<std::vector<std::size_t>> pending(plan.dumps.size());
  for (std::size_t i = 0; i < plan.jobs.size(); ++i) {
    const SweepJob& job = plan.jobs[i];
    if (writer.finished(job.identity.job_id)) {
      ++outcome.skipped;
      continue;
    }
    pending[job.dump_index].push_back(i);
    const DumpInfo& info = plan.dumps[job.dump_index];
    total_blocks += static_cast<long long>(selected_layers(info, replay).size()) * info.num_kv_heads;
  }

  const int to_run = outcome.jobs - outcome.skipped;
  auto label = [&] { return fmt::format("sweep {}: jobs {}/{} done", plan.config.name, outcome.ok + outcome.failed, to_run); };
  Progress progress(label(), total_blocks, !options.quiet, "blocks");
  const auto start = std::chrono::steady_clock::now();
  const Registry& registry = Registry::global();
  for (std::size_t d = 0; d < plan.dumps.size(); ++d) {
    const auto& todo = pending[d];
    for (std::size_t c0 = 0; c0 < todo.size(); c0 += static_cast<std::size_t>(chunk)) {
      const std::size_t c1 = std::min(todo.size(), c0 + static_cast<std::size_t>(chunk));
      std::vector<std::unique_ptr<Compressor>> owned;
      std::vector<const Compressor*> jobs;
      for (std::size_t k = c0; k < c1; ++k) {
        owned.push_back(registry.build(plan.jobs[todo[k]].spec));
        jobs.push_back(owned.back().get());
      }
      const auto t0 = std::chrono::steady_clock::now();
      try {
        const DumpReader reader(plan.config.dumps[d]);
        const std::vector<JobResult> results = replay_dump(reader, jobs, replay, &progress);
        const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        for (std::size_t k = c0; k < c1; ++k) {
          const JobResult& r = results[k - c0];
          const SweepJob& job = plan.jobs[todo[k]];
          if (!r.ok()) {
            writer.write_failed(job.identity, r.error);
            ++outcome.failed;
            continue;
          }
          if (plan.model) {
            try {
              const DecodeResult decode = decode_job(plan, reader, *jobs[k - c0], replay);
              writer.write_job(job.identity, r, summarize(r), wall / static_cast<double>(c1 - c0), replay.threads,
                               &decode);
            } catch (const Error& e) {
              writer.write_failed(job.identity, e.what());  // e.g. the dump was not recorded from this model
              ++outcome.failed;
              continue;
            }
          } else {
            writer.write_job(job.identity, r, summarize(r), wall / static_cast<double>(c1 - c0), replay.threads);
          }
          ++outcome.ok;
        }
      } catch (const Error& e) {
        // A dump that fails mid-sweep (corrupt layer, ...) fails its jobs; the rest go on.
        for (std::size_t k = c0; k < c1; ++k) writer.write_failed(plan.jobs[todo[k]].identity, e.what());
        outcome.failed += static_cast<int>(c1 - c0);
      }
      progress.set_label(label());
    }
  }
  progress.finish();
  outcome.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return outcome;
}

}  // namespace kvlab
