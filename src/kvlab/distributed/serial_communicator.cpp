// The communicator of a build without MPI: one rank.
#include "kvlab/distributed/communicator.hpp"

#include <cstdlib>

namespace kvlab::distributed {

namespace {
Communicator g_world;
}

bool built_with_mpi() { return false; }

Session::Session(int*, char***) {
  const char* size = std::getenv("OMPI_COMM_WORLD_SIZE");
  if (size == nullptr) size = std::getenv("PMI_SIZE");
  if (size != nullptr && std::atoi(size) > 1)
    fail("started as one of {} MPI ranks, but this kvlab was built without MPI (install libopenmpi-dev and "
         "configure with -DKVLAB_MPI=ON); every rank would run the whole job",
         size);
}

Session::~Session() = default;

const Communicator& world() { return g_world; }

void Communicator::send(int dest, int, std::string) const { fail("no rank {} to send to: built without MPI", dest); }

std::optional<Message> Communicator::try_receive(int, int) const {
  fail("nothing to receive: built without MPI");
}

std::string Communicator::broadcast(std::string data, int) const { return data; }

long long Communicator::min_over_ranks(long long value) const { return value; }

void Communicator::abort(int code) const { std::exit(code); }

}  // namespace kvlab::distributed
