#include "kvlab/sweep/sweep_runner.hpp"

#include <omp.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include "kvlab/core/error.hpp"
#include "kvlab/replay/replay_dump.hpp"
#include "kvlab/report/results_writer.hpp"
#include "kvlab/runner/job_runner.hpp"

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

// Writes each record as it arrives and keeps the counts and progress label.
class SweepSink : public JobSink {
 public:
  SweepSink(ResultsWriter& writer, SweepOutcome& outcome, Progress& progress, std::string name, int to_run)
      : writer_(writer), outcome_(outcome), progress_(progress), name_(std::move(name)), to_run_(to_run) {
    progress_.set_label(label());
  }
  void record(JobRecord&& r) override {
    writer_.write(r);
    ++(r.ok() ? outcome_.ok : outcome_.failed);
    progress_.set_label(label());
  }

 private:
  std::string label() const {
    return fmt::format("sweep {}: jobs {}/{} done", name_, outcome_.ok + outcome_.failed, to_run_);
  }
  ResultsWriter& writer_;
  SweepOutcome& outcome_;
  Progress& progress_;
  std::string name_;
  int to_run_;
};

}  // namespace

SweepOutcome run_sweep(const SweepPlan& plan, const SweepRunOptions& options) {
  // The model loads (and is validated) before the results folder is touched.
  std::optional<ModelInTheLoop> model;
  if (plan.model) model.emplace(*plan.model);
  const TableLayout layout{plan.param_columns, model ? model->num_layers() : 0};
  const auto mode = options.resume      ? ResultsWriter::Mode::Resume
                    : options.overwrite ? ResultsWriter::Mode::Overwrite
                                        : ResultsWriter::Mode::Fresh;
  ResultsWriter writer(plan.out_dir, layout, mode);
  write_resolved_config(plan);

  SweepOutcome outcome;
  outcome.jobs = static_cast<int>(plan.jobs.size());
  std::vector<Job> todo;
  long long total_blocks = 0;
  for (const SweepJob& sj : plan.jobs) {
    if (writer.finished(sj.job.identity.job_id)) {
      ++outcome.skipped;
      continue;
    }
    todo.push_back(sj.job);
    const PlannedDump& dump = plan.dumps[sj.dump_index];
    if (dump.error.empty()) total_blocks += job_blocks(sj.job, dump.info);
  }

  RunnerOptions ro;
  ro.threads = options.threads > 0 ? options.threads : plan.config.replay.threads;
  if (ro.threads <= 0) ro.threads = omp_get_max_threads();
  ro.batch = options.chunk;
  Progress progress("sweep", total_blocks, !options.quiet, "blocks");
  ro.progress = &progress;
  ro.step = model ? &*model : nullptr;
  SweepSink sink(writer, outcome, progress, plan.config.name, static_cast<int>(todo.size()));
  const auto start = std::chrono::steady_clock::now();
  run_jobs(todo, ro, sink);
  progress.finish();
  outcome.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return outcome;
}

}  // namespace kvlab
