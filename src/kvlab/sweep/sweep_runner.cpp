#include "kvlab/sweep/sweep_runner.hpp"

#include <chrono>
#include <filesystem>
#include <fstream>
#include <numeric>

#include "kvlab/core/error.hpp"
#include "kvlab/distributed/distribute_jobs.hpp"
#include "kvlab/replay/replay_dump.hpp"
#include "kvlab/report/results_writer.hpp"
#include "kvlab/runner/job_runner.hpp"

namespace kvlab {

namespace fs = std::filesystem;
using distributed::FinishedJob;

namespace {

void write_resolved_config(const SweepPlan& plan) {
  write_file_atomically((fs::path(plan.out_dir) / "config.resolved.yaml").string(), resolved_plan_yaml(plan));
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Rank 0: writes each finished job's rows as they arrive, keeps the counts
// and the progress label; under MPI with stderr not a terminal (mpirun pipes
// it, batch systems log it) it also prints a progress line now and then.
class SweepSink : public distributed::FinishedJobSink {
 public:
  SweepSink(const SweepPlan& plan, ResultsWriter& writer, SweepOutcome& outcome, Progress& progress, int to_run,
            bool log)
      : plan_(plan), writer_(writer), outcome_(outcome), progress_(progress), to_run_(to_run), log_(log) {
    progress_.set_label(label());
  }
  void finished(FinishedJob&& f) override {
    if (f.index >= plan_.jobs.size() || plan_.jobs[f.index].job.identity.job_id != f.job_id)
      fail("a rank reported job {} ({}), which is not that job of this plan", f.index, f.job_id);
    writer_.append(f.rows, f.job_id, f.ok);
    ++(f.ok ? outcome_.ok : outcome_.failed);
    progress_.set_label(label());
    const double t = seconds_since(start_);
    if (log_ && t - last_log_ >= std::max(10.0, 0.1 * t)) {
      last_log_ = t;
      const int done = outcome_.ok + outcome_.failed;
      fmt::print(stderr, "{} ({:.0f} %), {:.0f} s, ~{:.0f} s left\n", label(), 100.0 * done / to_run_, t,
                 t / done * (to_run_ - done));
    }
  }

 private:
  std::string label() const {
    return fmt::format("sweep {}: jobs {}/{} done", plan_.config.name, outcome_.ok + outcome_.failed, to_run_);
  }
  const SweepPlan& plan_;
  ResultsWriter& writer_;
  SweepOutcome& outcome_;
  Progress& progress_;
  int to_run_;
  bool log_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  double last_log_ = 0;
};

ResultsWriter::Mode writer_mode(const SweepRunOptions& o) {
  return o.resume ? ResultsWriter::Mode::Resume : o.overwrite ? ResultsWriter::Mode::Overwrite
                                                              : ResultsWriter::Mode::Fresh;
}

}  // namespace

std::vector<distributed::JobEstimate> plan_job_estimates(const SweepPlan& plan) {
  const std::vector<double> costs = plan_job_costs(plan);
  std::vector<distributed::JobEstimate> out;
  for (std::size_t i = 0; i < plan.jobs.size(); ++i) {
    const SweepJob& sj = plan.jobs[i];
    const PlannedDump& dump = plan.dumps[sj.dump_index];
    distributed::JobEstimate e;
    e.cost = costs[i];
    if (dump.error.empty()) {
      e.blocks = job_blocks(sj.job, dump.info);
      e.layers = selected_layers(dump.info, sj.job.replay);  // checked when the plan was made
    }
    out.push_back(std::move(e));
  }
  return out;
}

SweepOutcome run_sweep(const SweepPlan& plan, const SweepRunOptions& options) {
  const distributed::Communicator& comm = distributed::world();
  const std::string hash = plan_hash(plan);
  // Every rank must hold the same plan and load the model (validated here)
  // before rank 0 touches the results folder; a failure anywhere ends all
  // ranks with one message.
  std::optional<ModelInTheLoop> model;
  distributed::agreed(comm, [&] {
    const std::string root_hash = comm.broadcast(hash, 0);
    if (root_hash != hash)
      fail("this rank's plan differs from rank 0's (hash {} vs {}): do all nodes see the same sweep file and dumps?",
           hash, root_hash);
    if (plan.model) model.emplace(*plan.model);
  });
  const TableLayout layout{plan.param_columns, model ? model->num_layers() : 0};

  std::optional<ResultsWriter> writer;
  std::vector<std::size_t> scope(plan.jobs.size());  // the jobs this run is about: the plan or a shard
  std::iota(scope.begin(), scope.end(), std::size_t{0});
  if (options.shard) scope = shard_jobs(plan, *options.shard);
  distributed::agreed(comm, [&] {
    if (!comm.root()) return;
    const fs::path shard_file = fs::path(plan.out_dir) / kShardFile;
    if (options.overwrite && fs::exists(shard_file)) fs::remove(shard_file);
    check_shard_folder(plan.out_dir, hash, options.shard);
    writer.emplace(plan.out_dir, layout, writer_mode(options));
    write_resolved_config(plan);
    if (options.shard) {
      ShardRecord record{hash, *options.shard, {}};
      for (std::size_t i : scope) record.job_ids.push_back(plan.jobs[i].job.identity.job_id);
      write_shard_record(plan.out_dir, record);
    }
  });

  SweepOutcome outcome;
  outcome.jobs = static_cast<int>(scope.size());
  outcome.ranks = comm.size();
  std::vector<std::size_t> todo;
  std::vector<distributed::JobEstimate> estimates;
  long long total_blocks = 0;
  if (comm.root()) {
    estimates = plan_job_estimates(plan);
    for (std::size_t i : scope) {
      if (writer->finished(plan.jobs[i].job.identity.job_id)) {
        ++outcome.skipped;
        continue;
      }
      todo.push_back(i);
      total_blocks += estimates[i].blocks;
    }
  }

  distributed::DistributeOptions d;
  d.runner.threads = options.threads > 0 ? options.threads : plan.config.replay.threads;
  if (d.runner.threads <= 0) d.runner.threads = distributed::default_threads(comm);
  d.max_batch = options.chunk;
  Progress progress("sweep", total_blocks, comm.root() && !options.quiet, "blocks");
  d.runner.progress = comm.root() ? &progress : nullptr;
  d.runner.step = model ? &*model : nullptr;
  std::vector<Job> jobs;
  for (const SweepJob& sj : plan.jobs) jobs.push_back(sj.job);
  const auto start = std::chrono::steady_clock::now();
  if (comm.root()) {
    const bool log = comm.parallel() && !options.quiet && !Progress::stderr_is_terminal();
    SweepSink sink(plan, *writer, outcome, progress, static_cast<int>(todo.size()), log);
    distributed::distribute_jobs(comm, jobs, todo, estimates, d, layout, &sink);
    progress.finish();
    writer->order_rows(plan_job_ids(plan));
  } else {
    distributed::distribute_jobs(comm, jobs, {}, {}, d, layout, nullptr);
  }
  outcome.seconds = seconds_since(start);
  return outcome;
}

}  // namespace kvlab
