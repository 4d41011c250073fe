#pragma once
// The ranks of one MPI job, or a single process. This is kvlab's only view of
// MPI: byte messages, a broadcast and an agreement, all on MPI_COMM_WORLD.
// mpi_communicator.cpp implements it with MPI; serial_communicator.cpp (built
// when KVLAB_MPI=OFF or no MPI is found) is the one-rank case.
//
// Threading: only the thread that created the Session calls MPI
// (MPI_THREAD_FUNNELED); other threads may compute but never communicate.
#include <functional>
#include <optional>
#include <string>
#include <type_traits>

#include "kvlab/core/error.hpp"

namespace kvlab::distributed {

inline constexpr int kAnySource = -1;

struct Message {
  int source = 0;
  int tag = 0;
  std::string data;
};

// Initialises MPI for the process's lifetime when it was started by an MPI
// launcher (mpirun, srun: OMPI_COMM_WORLD_SIZE, PMI_SIZE or PMIX_RANK in the
// environment); otherwise the process is one rank of one and MPI is never
// touched, so the same binary runs without mpirun.
class Session {
 public:
  Session(int* argc, char*** argv);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
};

bool built_with_mpi();
bool launched_by_mpi();  // the environment names an MPI launcher

class Communicator {
 public:
  int rank() const { return rank_; }
  int size() const { return size_; }
  bool root() const { return rank_ == 0; }
  bool parallel() const { return size_ > 1; }

  // Point-to-point byte messages of any length (long ones travel in pieces).
  // Messages between two ranks with one tag arrive in the order sent.
  void send(int dest, int tag, std::string data) const;
  std::optional<Message> try_receive(int source, int tag) const;  // source may be kAnySource
  Message receive(int source, int tag) const;  // waits, sleeping between polls (no busy core)

  // `data` of rank `root` on every rank.
  std::string broadcast(std::string data, int root) const;
  // The smallest `value` over all ranks, on every rank.
  long long min_over_ranks(long long value) const;
  // Ranks of this job running on this node (1 without MPI).
  int ranks_on_node() const { return node_size_; }

  // Ends every rank of the job with `code` (MPI_Abort); exit(code) without MPI.
  [[noreturn]] void abort(int code) const;

 private:
  friend const Communicator& world();
  friend class Session;
  int rank_ = 0, size_ = 1, node_size_ = 1;
};

// MPI_COMM_WORLD (rank 0 of 1 before or without a Session).
const Communicator& world();

// Thrown on every rank when one rank failed in a step all ranks agreed on
// (see agree): only rank 0 reports it, and no rank needs to abort the job.
class AgreedError : public Error {
 public:
  using Error::Error;
};

// Every rank calls it after a step that may have failed locally (`error`
// non-empty). If any rank failed, all throw AgreedError with the message of
// the lowest failing rank ("rank R: ..." when R > 0).
void agree(const Communicator& comm, const std::string& error);

// Runs `step` on every rank and agrees on its outcome (kvlab::Error only; any
// other exception is a bug and propagates).
template <typename F>
auto agreed(const Communicator& comm, F&& step) -> decltype(step()) {
  std::string error;
  if constexpr (std::is_void_v<decltype(step())>) {
    try {
      step();
    } catch (const Error& e) {
      error = e.what();
    }
    agree(comm, error);
  } else {
    std::optional<decltype(step())> result;
    try {
      result.emplace(step());
    } catch (const Error& e) {
      error = e.what();
    }
    agree(comm, error);
    return std::move(*result);
  }
}

// Worker threads per rank when none are asked for: OpenMP's default, shared
// among the ranks on this node unless OMP_NUM_THREADS says otherwise.
int default_threads(const Communicator& comm);

}  // namespace kvlab::distributed
