#include "kvlab/distributed/distribute_jobs.hpp"

#include <chrono>
#include <exception>
#include <map>
#include <mutex>
#include <thread>

#include "kvlab/distributed/job_pieces.hpp"

namespace kvlab::distributed {

namespace {

constexpr int kTagRequest = 101;  // worker → rank 0: results of its last batch, and a request for more
constexpr int kTagAssign = 102;   // rank 0 → worker: the next batch (no jobs: stop)

std::string encode_batch(const Batch& b) {
  ByteWriter w;
  w.i32(b.piece);
  w.i32(b.pieces);
  w.u64(b.layers.size());
  for (int l : b.layers) w.i32(l);
  w.u64(b.jobs.size());
  for (std::size_t j : b.jobs) w.u64(j);
  return w.take();
}

Batch decode_batch(std::string_view bytes) {
  ByteReader r(bytes);
  Batch b;
  b.piece = r.i32();
  b.pieces = r.i32();
  b.layers.resize(r.count(4));
  for (int& l : b.layers) l = r.i32();
  b.jobs.resize(r.count(8));
  for (std::size_t& j : b.jobs) j = static_cast<std::size_t>(r.u64());
  r.expect_done();
  return b;
}

// What a rank reports after a batch: whole jobs as rows, pieces as results.
struct PieceDone {
  std::size_t job = 0;
  int piece = 0, pieces = 1;
  JobRecord record;
};
struct BatchDone {
  std::vector<FinishedJob> jobs;
  std::vector<PieceDone> pieces;
};

std::string encode_done(const BatchDone& d) {
  ByteWriter w;
  w.str(encode_finished_jobs(d.jobs));
  w.u64(d.pieces.size());
  for (const PieceDone& p : d.pieces) {
    w.u64(p.job);
    w.i32(p.piece);
    w.i32(p.pieces);
    encode_piece(w, p.record);
  }
  return w.take();
}

BatchDone decode_done(std::string_view bytes) {
  ByteReader r(bytes);
  BatchDone d;
  d.jobs = decode_finished_jobs(r.str());
  d.pieces.resize(r.count(8 + 4 + 4));
  for (PieceDone& p : d.pieces) {
    p.job = static_cast<std::size_t>(r.u64());
    p.piece = r.i32();
    p.pieces = r.i32();
    p.record = decode_piece(r);
  }
  r.expect_done();
  return d;
}

// Runs one batch through the job runner.
BatchDone run_batch(std::span<const Job> jobs, const Batch& batch, const DistributeOptions& options,
                    const TableLayout& layout) {
  std::vector<Job> selected;
  for (std::size_t i : batch.jobs) {
    if (i >= jobs.size()) fail("malformed message: job {} of {}", i, jobs.size());
    selected.push_back(jobs[i]);
    if (batch.pieces > 1) selected.back().replay.layers = batch.layers;
  }
  RunnerOptions ro = options.runner;
  ro.batch = std::max<int>(ro.batch, static_cast<int>(selected.size()));  // one pass over the layers
  CollectingSink sink;
  run_jobs(selected, ro, sink);
  BatchDone done;
  for (std::size_t k = 0; k < batch.jobs.size(); ++k) {
    JobRecord& r = sink.records[k];
    if (batch.pieces > 1)
      done.pieces.push_back({batch.jobs[k], batch.piece, batch.pieces, std::move(r)});
    else
      done.jobs.push_back({batch.jobs[k], r.identity.job_id, r.ok(), ResultsWriter::format(layout, r)});
  }
  return done;
}

void work_for_root(const Communicator& comm, std::span<const Job> jobs, const DistributeOptions& options,
                   const TableLayout& layout) {
  BatchDone done;
  while (true) {
    comm.send(0, kTagRequest, encode_done(done));
    const Batch batch = decode_batch(comm.receive(0, kTagAssign).data);
    if (batch.jobs.empty()) return;
    done = run_batch(jobs, batch, options, layout);
  }
}

// Rank 0: puts pieces back together and passes finished jobs to the sink.
class Collector {
 public:
  Collector(std::span<const Job> jobs, const std::vector<JobEstimate>& est, const TableLayout& layout,
            FinishedJobSink& sink, Progress* progress)
      : jobs_(jobs), est_(est), layout_(layout), sink_(sink), progress_(progress) {}

  void add(BatchDone&& done, bool ran_here, const WorkPlan& plan) {
    for (FinishedJob& f : done.jobs) {
      if (f.index >= jobs_.size()) fail("a rank reported job {} of {}", f.index, jobs_.size());
      if (!ran_here && progress_) progress_->advance(est_[f.index].blocks);
      sink_.finished(std::move(f));
    }
    for (PieceDone& p : done.pieces) {
      if (p.job >= jobs_.size() || p.pieces < 2 || p.piece < 0 || p.piece >= p.pieces)
        fail("a rank reported piece {}/{} of job {}", p.piece, p.pieces, p.job);
      if (!ran_here && progress_) progress_->advance(plan.blocks_of(p.job, p.piece));
      Pieces& got = pieces_[p.job];
      if (got.records.empty()) {
        got.records.resize(static_cast<std::size_t>(p.pieces));
        got.arrived.assign(static_cast<std::size_t>(p.pieces), false);
      }
      const auto at = static_cast<std::size_t>(p.piece);
      if (got.records.size() != static_cast<std::size_t>(p.pieces) || got.arrived[at])
        fail("a rank reported piece {}/{} of job {} again or inconsistently", p.piece, p.pieces, p.job);
      got.records[at] = std::move(p.record);
      got.arrived[at] = true;
      if (++got.count < p.pieces) continue;
      JobRecord whole = assemble_pieces(jobs_[p.job].identity, std::move(got.records));
      pieces_.erase(p.job);
      sink_.finished({p.job, whole.identity.job_id, whole.ok(), ResultsWriter::format(layout_, whole)});
    }
  }

 private:
  std::span<const Job> jobs_;
  const std::vector<JobEstimate>& est_;
  const TableLayout& layout_;
  FinishedJobSink& sink_;
  Progress* progress_;
  struct Pieces {
    std::vector<JobRecord> records;  // by piece (= layer order)
    std::vector<bool> arrived;
    int count = 0;
  };
  std::map<std::size_t, Pieces> pieces_;  // jobs of which some pieces arrived
};

void coordinate(const Communicator& comm, std::span<const Job> jobs, const std::vector<std::size_t>& todo,
                const std::vector<JobEstimate>& est, const DistributeOptions& options, const TableLayout& layout,
                FinishedJobSink& sink) {
  WorkPlan plan(jobs, todo, est, comm.size(), options.max_batch, options.split && options.runner.step == nullptr);
  Collector collector(jobs, est, layout, sink, options.runner.progress);

  std::mutex mutex;  // guards plan's dispatcher, local_done, local_finished, local_error
  std::vector<BatchDone> local_done;
  bool local_finished = false;
  std::exception_ptr local_error;
  std::thread local([&] {
    try {
      while (true) {
        Batch batch;
        {
          std::lock_guard lock(mutex);
          batch = plan.next();
        }
        if (batch.jobs.empty()) break;
        BatchDone done = run_batch(jobs, batch, options, layout);
        std::lock_guard lock(mutex);
        local_done.push_back(std::move(done));
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
    std::vector<BatchDone> mine;
    bool local_over = false;
    {
      std::lock_guard lock(mutex);
      mine.swap(local_done);
      local_over = local_finished;
    }
    for (BatchDone& d : mine) collector.add(std::move(d), true, plan);
    if (local_over && workers == 0) break;

    std::optional<Message> m = comm.try_receive(kAnySource, kTagRequest);
    if (!m) {
      std::this_thread::sleep_for(pause);  // idle: leave the cores to the workers
      pause = std::min(pause * 2, std::chrono::microseconds(2000));
      continue;
    }
    pause = std::chrono::microseconds(20);
    collector.add(decode_done(m->data), false, plan);
    Batch batch;
    {
      std::lock_guard lock(mutex);
      batch = plan.next();
    }
    comm.send(m->source, kTagAssign, encode_batch(batch));
    if (batch.jobs.empty()) --workers;
  }
  local.join();
  if (local_error) std::rethrow_exception(local_error);
}

// One rank: the todo jobs in order, as without MPI.
void run_alone(std::span<const Job> jobs, const std::vector<std::size_t>& todo, const DistributeOptions& options,
               const TableLayout& layout, FinishedJobSink& sink) {
  class Rows : public JobSink {
   public:
    Rows(const std::vector<std::size_t>& todo, const TableLayout& layout, FinishedJobSink& sink)
        : todo_(todo), layout_(layout), sink_(sink) {}
    void record(JobRecord&& r) override {
      sink_.finished({todo_[next_++], r.identity.job_id, r.ok(), ResultsWriter::format(layout_, r)});
    }

   private:
    const std::vector<std::size_t>& todo_;
    const TableLayout& layout_;
    FinishedJobSink& sink_;
    std::size_t next_ = 0;
  } rows(todo, layout, sink);
  std::vector<Job> selected;
  for (std::size_t i : todo) selected.push_back(jobs[i]);
  RunnerOptions ro = options.runner;
  ro.batch = options.max_batch;  // consecutive same-dump jobs share reads
  run_jobs(selected, ro, rows);
}

}  // namespace

void distribute_jobs(const Communicator& comm, std::span<const Job> jobs, const std::vector<std::size_t>& todo,
                     const std::vector<JobEstimate>& estimates, const DistributeOptions& options,
                     const TableLayout& layout, FinishedJobSink* sink) {
  if (!comm.parallel()) return run_alone(jobs, todo, options, layout, *sink);
  DistributeOptions per_rank = options;
  if (per_rank.max_batch <= 0) {
    const int threads = options.runner.threads > 0 ? options.runner.threads : default_threads(comm);
    per_rank.max_batch = 4 * threads;
  }
  if (comm.root())
    coordinate(comm, jobs, todo, estimates, per_rank, layout, *sink);
  else
    work_for_root(comm, jobs, per_rank, layout);
}

}  // namespace kvlab::distributed
