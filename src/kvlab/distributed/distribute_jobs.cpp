#include "kvlab/distributed/distribute_jobs.hpp"

#include <chrono>
#include <exception>
#include <mutex>
#include <thread>

#include "kvlab/runner/job_schedule.hpp"

namespace kvlab::distributed {

namespace {

constexpr int kTagRequest = 101;  // worker → rank 0: rows of the last batch, and "more, please"
constexpr int kTagAssign = 102;   // rank 0 → worker: the next batch (empty: stop)

// Formats each record into rows as the runner finishes it.
class FormattingSink : public JobSink {
 public:
  FormattingSink(const TableLayout& layout, std::vector<std::size_t> indices, std::function<void(FinishedJob&&)> out)
      : layout_(layout), indices_(std::move(indices)), out_(std::move(out)) {}
  void record(JobRecord&& r) override {
    FinishedJob f{indices_.at(next_++), r.identity.job_id, r.ok(), ResultsWriter::format(layout_, r)};
    out_(std::move(f));
  }

 private:
  const TableLayout& layout_;
  std::vector<std::size_t> indices_;
  std::size_t next_ = 0;
  std::function<void(FinishedJob&&)> out_;
};

void run_batch(std::span<const Job> jobs, const std::vector<std::size_t>& batch, const DistributeOptions& options,
               const TableLayout& layout, std::function<void(FinishedJob&&)> out) {
  std::vector<Job> selected;
  for (std::size_t i : batch) {
    if (i >= jobs.size()) fail("malformed message: job {} of {}", i, jobs.size());
    selected.push_back(jobs[i]);
  }
  RunnerOptions ro = options.runner;
  ro.batch = std::max<int>(ro.batch, static_cast<int>(selected.size()));  // one pass over the dump's layers
  FormattingSink sink(layout, batch, std::move(out));
  run_jobs(selected, ro, sink);
}

void work_for_root(const Communicator& comm, std::span<const Job> jobs, const DistributeOptions& options,
                   const TableLayout& layout) {
  std::vector<FinishedJob> done;
  while (true) {
    comm.send(0, kTagRequest, encode_finished_jobs(done));
    done.clear();
    const std::vector<std::size_t> batch = decode_indices(comm.receive(0, kTagAssign).data);
    if (batch.empty()) return;
    run_batch(jobs, batch, options, layout, [&](FinishedJob&& f) { done.push_back(std::move(f)); });
  }
}

// Rank 0: its main thread serves the other ranks, a second thread runs jobs.
void coordinate(const Communicator& comm, std::span<const Job> jobs, const std::vector<std::size_t>& todo,
                const std::vector<double>& costs, const DistributeOptions& options, const TableLayout& layout,
                FinishedJobSink& sink) {
  const std::vector<std::size_t> groups =
      consecutive_groups(jobs.size(), [&](std::size_t a, std::size_t b) { return same_replay(jobs[a], jobs[b]); });
  std::vector<ScheduledJob> scheduled;
  for (std::size_t i : todo) scheduled.push_back({i, costs.at(i), groups[i]});
  JobDispatcher dispatcher(std::move(scheduled), comm.size(), options.max_batch);

  std::mutex mutex;  // guards dispatcher, local_done, local_finished, local_error
  std::vector<FinishedJob> local_done;
  bool local_finished = false;
  std::exception_ptr local_error;
  std::thread local([&] {
    try {
      while (true) {
        std::vector<std::size_t> batch;
        {
          std::lock_guard lock(mutex);
          batch = dispatcher.next();
        }
        if (batch.empty()) break;
        run_batch(jobs, batch, options, layout, [&](FinishedJob&& f) {
          std::lock_guard lock(mutex);
          local_done.push_back(std::move(f));
        });
      }
    } catch (...) {
      std::lock_guard lock(mutex);
      local_error = std::current_exception();
    }
    std::lock_guard lock(mutex);
    local_finished = true;
  });
  // If serving fails (e.g. rank 0 cannot write), the caller aborts the MPI
  // job; the worker thread must not terminate the process first.
  struct Detach {
    std::thread& t;
    ~Detach() {
      if (t.joinable()) t.detach();
    }
  } detach{local};

  int workers = comm.size() - 1;
  auto pause = std::chrono::microseconds(20);
  while (true) {
    std::vector<FinishedJob> mine;
    bool local_over = false;
    {
      std::lock_guard lock(mutex);
      mine.swap(local_done);
      local_over = local_finished;
    }
    for (FinishedJob& f : mine) sink.finished(std::move(f), true);
    if (local_over && workers == 0) break;

    std::optional<Message> m = comm.try_receive(kAnySource, kTagRequest);
    if (!m) {
      std::this_thread::sleep_for(pause);  // idle: do not take a core from the workers
      pause = std::min(pause * 2, std::chrono::microseconds(2000));
      continue;
    }
    pause = std::chrono::microseconds(20);
    for (FinishedJob& f : decode_finished_jobs(m->data)) sink.finished(std::move(f), false);
    std::vector<std::size_t> batch;
    {
      std::lock_guard lock(mutex);
      batch = dispatcher.next();
    }
    comm.send(m->source, kTagAssign, encode_indices(batch));
    if (batch.empty()) --workers;
  }
  local.join();
  if (local_error) std::rethrow_exception(local_error);
}

}  // namespace

void distribute_jobs(const Communicator& comm, std::span<const Job> jobs, const std::vector<std::size_t>& todo,
                     const std::vector<double>& costs, const DistributeOptions& options, const TableLayout& layout,
                     FinishedJobSink* sink) {
  if (!comm.parallel()) {
    std::vector<Job> selected;
    for (std::size_t i : todo) selected.push_back(jobs[i]);
    DistributeOptions serial = options;
    serial.runner.batch = options.max_batch;  // consecutive same-dump jobs share reads, as without MPI
    FormattingSink formatting(layout, todo, [&](FinishedJob&& f) { sink->finished(std::move(f), true); });
    run_jobs(selected, serial.runner, formatting);
    return;
  }
  DistributeOptions per_rank = options;
  if (per_rank.max_batch <= 0) {
    const int threads = options.runner.threads > 0 ? options.runner.threads : default_threads(comm);
    per_rank.max_batch = 4 * threads;
  }
  if (comm.root())
    coordinate(comm, jobs, todo, costs, per_rank, layout, *sink);
  else
    work_for_root(comm, jobs, per_rank, layout);
}

}  // namespace kvlab::distributed
