// The communicator over MPI_COMM_WORLD (OpenMPI, MPICH: only the MPI C API).
// The MPI C API only: no C++ bindings (they need libmpi_cxx).
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdlib>

#include "kvlab/distributed/communicator.hpp"

namespace kvlab::distributed {

namespace {

Communicator g_world;
bool g_initialised = false;

// A message longer than an int count travels in pieces; each piece ends with
// one byte: 1 when another piece follows, 0 for the last.
constexpr std::size_t kMaxPiece = std::size_t{1} << 30;

void check(int rc, const char* what) {
  if (rc != MPI_SUCCESS) fail("MPI: {} failed (error {})", what, rc);
}

std::string receive_piece(const MPI_Status& probed) {
  int count = 0;
  check(MPI_Get_count(&probed, MPI_BYTE, &count), "MPI_Get_count");
  std::string piece(static_cast<std::size_t>(count), '\0');
  check(MPI_Recv(piece.data(), count, MPI_BYTE, probed.MPI_SOURCE, probed.MPI_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE),
        "MPI_Recv");
  if (piece.empty()) fail("MPI: empty message piece from rank {}", probed.MPI_SOURCE);
  return piece;
}

}  // namespace

bool built_with_mpi() { return true; }

Session::Session(int* argc, char*** argv) {
  if (!launched_by_mpi()) return;
  int provided = 0;
  check(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
  g_initialised = true;
  if (provided < MPI_THREAD_FUNNELED) fail("MPI: the library does not support MPI_THREAD_FUNNELED");
  MPI_Comm_rank(MPI_COMM_WORLD, &g_world.rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &g_world.size_);
  MPI_Comm node;
  check(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node), "MPI_Comm_split_type");
  MPI_Comm_size(node, &g_world.node_size_);
  MPI_Comm_free(&node);
}

Session::~Session() {
  int finalised = 0;
  MPI_Finalized(&finalised);
  if (g_initialised && !finalised) MPI_Finalize();
}

const Communicator& world() { return g_world; }

void Communicator::send(int dest, int tag, std::string data) const {
  if (data.size() < kMaxPiece) {
    data.push_back('\0');
    check(MPI_Send(data.data(), static_cast<int>(data.size()), MPI_BYTE, dest, tag, MPI_COMM_WORLD), "MPI_Send");
    return;
  }
  for (std::size_t at = 0; at < data.size(); at += kMaxPiece) {
    const std::size_t n = std::min(kMaxPiece, data.size() - at);
    std::string piece = data.substr(at, n);
    piece.push_back(at + n < data.size() ? '\1' : '\0');
    check(MPI_Send(piece.data(), static_cast<int>(piece.size()), MPI_BYTE, dest, tag, MPI_COMM_WORLD), "MPI_Send");
  }
}

std::optional<Message> Communicator::try_receive(int source, int tag) const {
  int flag = 0;
  MPI_Status status;
  check(MPI_Iprobe(source == kAnySource ? MPI_ANY_SOURCE : source, tag, MPI_COMM_WORLD, &flag, &status),
        "MPI_Iprobe");
  if (!flag) return std::nullopt;
  Message m{status.MPI_SOURCE, status.MPI_TAG, receive_piece(status)};
  while (m.data.back() == '\1') {  // more pieces follow, in order, from the same rank and tag
    m.data.pop_back();
    check(MPI_Probe(m.source, m.tag, MPI_COMM_WORLD, &status), "MPI_Probe");
    m.data += receive_piece(status);
  }
  m.data.pop_back();
  return m;
}

std::string Communicator::broadcast(std::string data, int root) const {
  if (size_ == 1) return data;
  std::uint64_t length = data.size();
  check(MPI_Bcast(&length, 1, MPI_UINT64_T, root, MPI_COMM_WORLD), "MPI_Bcast");
  data.resize(length);
  for (std::size_t at = 0; at < length; at += kMaxPiece) {
    const int n = static_cast<int>(std::min<std::size_t>(kMaxPiece, length - at));
    check(MPI_Bcast(data.data() + at, n, MPI_BYTE, root, MPI_COMM_WORLD), "MPI_Bcast");
  }
  return data;
}

long long Communicator::min_over_ranks(long long value) const {
  if (size_ == 1) return value;
  long long out = value;
  check(MPI_Allreduce(&value, &out, 1, MPI_LONG_LONG, MPI_MIN, MPI_COMM_WORLD), "MPI_Allreduce");
  return out;
}

void Communicator::abort(int code) const {
  if (g_initialised) MPI_Abort(MPI_COMM_WORLD, code);
  std::exit(code);
}

}  // namespace kvlab::distributed
