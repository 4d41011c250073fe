#include "kvlab/distributed/layer_split.hpp"

#include <chrono>

#include "kvlab/distributed/wire.hpp"
#include "kvlab/replay/replay_dump.hpp"

namespace kvlab::distributed {

namespace {

constexpr int kTagPart = 201;  // rank → rank 0: its layers' results of every job

// One rank's share: each job's result on that rank's layers.
std::vector<JobRecord> run_part(std::span<const Job> jobs, const std::vector<int>& layers,
                                const RunnerOptions& options) {
  if (layers.empty()) return std::vector<JobRecord>(jobs.size());  // more ranks than layers
  std::vector<Job> part(jobs.begin(), jobs.end());
  for (Job& j : part) j.replay.layers = layers;
  CollectingSink sink;
  run_jobs(part, options, sink);
  return std::move(sink.records);
}

std::string encode_part(const std::vector<JobRecord>& records) {
  ByteWriter w;
  w.u64(records.size());
  for (const JobRecord& r : records) {
    encode(w, r.result);
    w.str(r.error);
  }
  return w.take();
}

// Appends one rank's share of each job to the records being assembled.
void add_part(std::vector<JobRecord>& records, std::string_view bytes, int from) {
  ByteReader r(bytes);
  if (r.count(1) != records.size()) fail("rank {}: its results cover another number of jobs", from);
  for (JobRecord& rec : records) {
    JobResult part = decode_job_result(r);
    const std::string error = r.str();
    JobResult& whole = rec.result;
    whole.compute_seconds += part.compute_seconds;
    if (!part.blocks.empty()) {
      whole.prompt_len = part.prompt_len;
      whole.decode_steps = part.decode_steps;
      whole.attention = part.attention;
    }
    if (rec.error.empty() && !error.empty()) rec.error = error;  // the first failing layer range names it
    for (BlockResult& b : part.blocks) whole.blocks.push_back(std::move(b));
  }
  r.expect_done();
}

}  // namespace

std::vector<int> layers_of_rank(const std::vector<int>& selected, int rank, int ranks) {
  const std::size_t n = selected.size(), r = static_cast<std::size_t>(rank), p = static_cast<std::size_t>(ranks);
  const std::size_t begin = n * r / p, end = n * (r + 1) / p;
  return {selected.begin() + static_cast<std::ptrdiff_t>(begin), selected.begin() + static_cast<std::ptrdiff_t>(end)};
}

std::vector<JobRecord> run_jobs_layer_split(const Communicator& comm, std::span<const Job> jobs, const DumpInfo& info,
                                            const RunnerOptions& options) {
  if (!comm.parallel() || jobs.empty()) {
    CollectingSink sink;
    run_jobs(jobs, options, sink);
    return std::move(sink.records);
  }
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<int> mine = layers_of_rank(selected_layers(info, jobs.front().replay), comm.rank(), comm.size());
  std::vector<JobRecord> part = run_part(jobs, mine, options);
  if (!comm.root()) {
    comm.send(0, kTagPart, encode_part(part));
    return {};
  }

  std::vector<JobRecord> records(jobs.size());
  for (std::size_t j = 0; j < jobs.size(); ++j) {
    records[j].identity = jobs[j].identity;
    records[j].timing.threads = options.threads;
    records[j].timing.batch_jobs = static_cast<int>(jobs.size());
  }
  add_part(records, encode_part(part), 0);
  for (int rank = 1; rank < comm.size(); ++rank) add_part(records, comm.receive(rank, kTagPart).data, rank);
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (JobRecord& r : records) {
    r.timing.batch_wall_s = wall;
    r.timing.replay_cpu_s = r.result.compute_seconds;
    r.result.error = r.error;
    if (!r.ok()) {
      r.result.blocks.clear();
      continue;
    }
    r.summary = summarize(r.result);
    r.steps = summarize_steps(r.result);
  }
  return records;
}

}  // namespace kvlab::distributed
