#pragma once
// The one job runner. Jobs run in their given order; consecutive jobs on the
// same dump with the same replay settings form batches that share each layer
// read (replay_dump: blocks of all the batch's jobs in parallel). Each job's
// record reaches the sink as soon as its batch is done, in job order. A job
// that fails (the dump cannot be read, the compressor cannot run on it, a
// compressor or the model step throws) yields a failed record; the others go on.
#include <span>

#include "kvlab/core/progress.hpp"
#include "kvlab/io/dump_reader.hpp"
#include "kvlab/runner/job.hpp"

namespace kvlab {

class JobSink {
 public:
  virtual ~JobSink() = default;
  virtual void record(JobRecord&& record) = 0;
};

// An optional step after a job's replay (the model in the loop): fills
// record.decode, or throws kvlab::Error to fail the job.
class JobStep {
 public:
  virtual ~JobStep() = default;
  virtual void run(const Job& job, const DumpReader& dump, const Compressor& compressor, int threads,
                   JobRecord& record) const = 0;
};

struct RunnerOptions {
  int threads = 0;               // 0: OpenMP's default
  int batch = 0;                 // most jobs per batch (0: 4 × threads)
  Progress* progress = nullptr;  // advanced by one per finished block
  const JobStep* step = nullptr;
};

void run_jobs(std::span<const Job> jobs, const RunnerOptions& options, JobSink& sink);

// Blocks (layer × kv head) a job replays on a dump described by `info`, for
// progress totals.
long long job_blocks(const Job& job, const DumpInfo& info);

// A sink that keeps every record (kvlab run, regress, tests).
class CollectingSink : public JobSink {
 public:
  void record(JobRecord&& r) override { records.push_back(std::move(r)); }
  std::vector<JobRecord> records;
};

}  // namespace kvlab
