// What the MPI and the single-process communicators share.
#include "kvlab/distributed/communicator.hpp"

#include <omp.h>

#include <chrono>
#include <cstdlib>
#include <thread>

namespace kvlab::distributed {

bool launched_by_mpi() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"})
    if (std::getenv(name) != nullptr) return true;
  return false;
}

Message Communicator::receive(int source, int tag) const {
  // Sleep between polls (doubling up to 2 ms): a waiting rank must not take
  // a core from the ranks and threads that compute on the same node.
  auto pause = std::chrono::microseconds(20);
  while (true) {
    if (auto m = try_receive(source, tag)) return std::move(*m);
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::microseconds(2000));
  }
}

void agree(const Communicator& comm, const std::string& error) {
  if (!comm.parallel()) {
    if (!error.empty()) throw AgreedError(error);
    return;
  }
  const long long first = comm.min_over_ranks(error.empty() ? comm.size() : comm.rank());
  if (first == comm.size()) return;
  const int from = static_cast<int>(first);
  std::string message = comm.broadcast(comm.rank() == from ? error : std::string(), from);
  if (from != 0) message = fmt::format("rank {}: {}", from, message);
  throw AgreedError(message);
}

int default_threads(const Communicator& comm) {
  const int omp = omp_get_max_threads();  // the affinity mask's cores, or OMP_NUM_THREADS
  if (std::getenv("OMP_NUM_THREADS") != nullptr || comm.ranks_on_node() <= 1) return omp;
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  return std::max(1, std::min(omp, cores / comm.ranks_on_node()));
}

}  // namespace kvlab::distributed
