#include "kvlab/distributed/layer_split.hpp"

#include "kvlab/distributed/job_pieces.hpp"
#include "kvlab/replay/replay_dump.hpp"

namespace kvlab::distributed {

namespace {

constexpr int kTagPieces = 201;  // rank → rank 0: its piece of every job

}  // namespace

std::vector<JobRecord> run_jobs_layer_split(const Communicator& comm, std::span<const Job> jobs, const DumpInfo& info,
                                            const RunnerOptions& options) {
  CollectingSink sink;
  if (!comm.parallel() || jobs.empty()) {
    run_jobs(jobs, options, sink);
    return std::move(sink.records);
  }
  const std::vector<int> mine =
      piece_layers(selected_layers(info, jobs.front().replay), comm.rank(), comm.size());
  if (!mine.empty()) {
    std::vector<Job> part(jobs.begin(), jobs.end());
    for (Job& j : part) j.replay.layers = mine;
    run_jobs(part, options, sink);
  } else {
    sink.records.resize(jobs.size());  // more ranks than layers: an empty piece
  }
  if (!comm.root()) {
    ByteWriter w;
    for (const JobRecord& r : sink.records) encode_piece(w, r);
    comm.send(0, kTagPieces, w.take());
    return {};
  }

  std::vector<std::vector<JobRecord>> pieces(jobs.size());  // job → its pieces in rank (= layer) order
  for (std::size_t j = 0; j < jobs.size(); ++j) pieces[j].push_back(std::move(sink.records[j]));
  for (int rank = 1; rank < comm.size(); ++rank) {
    const Message m = comm.receive(rank, kTagPieces);
    ByteReader r(m.data);
    for (auto& p : pieces) p.push_back(decode_piece(r));
    r.expect_done();
  }
  std::vector<JobRecord> records;
  for (std::size_t j = 0; j < jobs.size(); ++j)
    records.push_back(assemble_pieces(jobs[j].identity, std::move(pieces[j])));
  return records;
}

}  // namespace kvlab::distributed
