#include "kvlab/runner/job_runner.hpp"

#include <omp.h>

#include <chrono>
#include <optional>

#include "kvlab/core/error.hpp"
#include "kvlab/replay/replay_dump.hpp"

namespace kvlab {

bool same_replay(const Job& a, const Job& b) {
  const ReplayOptions &x = a.replay, &y = b.replay;
  return a.dump_path == b.dump_path && x.layers == y.layers && x.eval_every == y.eval_every &&
         x.max_steps == y.max_steps && x.attention == y.attention && x.seed == y.seed;
}

std::vector<std::size_t> same_replay_groups(std::span<const Job> jobs) {
  std::vector<std::size_t> g(jobs.size(), 0);
  for (std::size_t i = 1; i < jobs.size(); ++i) g[i] = same_replay(jobs[i - 1], jobs[i]) ? g[i - 1] : g[i - 1] + 1;
  return g;
}

long long job_blocks(const Job& job, const DumpInfo& info) {
  try {
    return static_cast<long long>(selected_layers(info, job.replay).size()) * info.num_kv_heads;
  } catch (const Error&) {
    return 0;  // the job will fail with this error
  }
}

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// One batch: jobs on one dump with one replay setting.
void run_batch(std::span<const Job> jobs, int threads, const RunnerOptions& options, JobSink& sink) {
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<JobRecord> records(jobs.size());
  for (std::size_t j = 0; j < jobs.size(); ++j) {
    records[j].identity = jobs[j].identity;
    records[j].timing.threads = threads;
    records[j].timing.batch_jobs = static_cast<int>(jobs.size());
  }
  auto fail_remaining = [&](const std::string& error, bool file_error) {
    for (JobRecord& r : records)
      if (r.ok()) {
        r.error = error;
        r.file_error = file_error;
      }
  };

  std::optional<DumpReader> reader;
  std::vector<std::unique_ptr<Compressor>> compressors(jobs.size());
  try {
    reader.emplace(jobs.front().dump_path);
    std::vector<const Compressor*> to_replay;
    std::vector<std::size_t> index;
    for (std::size_t j = 0; j < jobs.size(); ++j) {
      try {
        compressors[j] = Registry::global().build(jobs[j].spec);
        to_replay.push_back(compressors[j].get());
        index.push_back(j);
      } catch (const Error& e) {
        records[j].error = e.what();
      }
    }
    ReplayOptions replay = jobs.front().replay;
    replay.threads = threads;
    std::vector<JobResult> results = replay_dump(*reader, to_replay, replay, options.progress);
    for (std::size_t k = 0; k < index.size(); ++k) {
      JobRecord& r = records[index[k]];
      r.result = std::move(results[k]);
      r.error = r.result.error;
      r.timing.replay_cpu_s = r.result.compute_seconds;
    }
  } catch (const FileError& e) {  // the dump cannot be opened or read
    fail_remaining(e.what(), true);
  } catch (const Error& e) {
    fail_remaining(e.what(), false);
  } catch (const std::exception& e) {  // e.g. std::bad_alloc: still name the dump
    fail_remaining(fmt::format("{}: {}", jobs.front().dump_path, e.what()), false);
  }
  const double wall = seconds_since(t0);

  for (std::size_t j = 0; j < jobs.size(); ++j) {
    JobRecord& r = records[j];
    r.timing.batch_wall_s = wall;
    if (r.ok()) {
      r.summary = summarize(r.result);
      r.steps = summarize_steps(r.result);
      if (options.step) {
        const auto m0 = std::chrono::steady_clock::now();
        try {
          options.step->run(jobs[j], *reader, *compressors[j], threads, r);
        } catch (const Error& e) {
          r.error = e.what();
          r.file_error = dynamic_cast<const FileError*>(&e) != nullptr;
        }
        r.timing.model_s = seconds_since(m0);
      }
    }
    sink.record(std::move(r));
  }
}

}  // namespace

void run_jobs(std::span<const Job> jobs, const RunnerOptions& options, JobSink& sink) {
  const int threads = options.threads > 0 ? options.threads : omp_get_max_threads();
  const std::size_t batch = static_cast<std::size_t>(options.batch > 0 ? options.batch : 4 * threads);
  std::size_t i = 0;
  while (i < jobs.size()) {
    std::size_t end = i + 1;
    while (end < jobs.size() && end - i < batch && same_replay(jobs[i], jobs[end])) ++end;
    run_batch(jobs.subspan(i, end - i), threads, options, sink);
    i = end;
  }
}

}  // namespace kvlab
