#pragma once
// A job: one compressor spec replayed on one dump with fixed replay settings.
// Every front end (run, sweep, regress, MPI ranks, shards, Python) describes
// its work as a list of jobs and hands it to the one runner (job_runner.hpp).
#include <span>
#include <string>
#include <vector>

#include "kvlab/compressors/registry.hpp"
#include "kvlab/replay/replay_options.hpp"
#include "kvlab/report/job_record.hpp"

namespace kvlab {

struct Job {
  std::string dump_path;   // the file to read
  ResolvedSpec spec;
  ReplayOptions replay;    // layers, eval_every, max_steps, attention, seed (threads: the runner's)
  JobIdentity identity;    // job_id, labels and parameters for the result files
};

// Jobs share a dump's layer reads when they replay the same file with the
// same settings.
bool same_replay(const Job& a, const Job& b);

// A group id per job: consecutive jobs with the same replay share one.
std::vector<std::size_t> same_replay_groups(std::span<const Job> jobs);

}  // namespace kvlab
