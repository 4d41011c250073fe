#include "kvlab/io/memory_budget.hpp"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "kvlab/core/error.hpp"
#include "kvlab/io/hdf5_storage.hpp"

namespace kvlab::io {

namespace {

// The first number in `path` (times `scale`), or UINT64_MAX when the file is
// missing or says "max".
std::uint64_t read_number(const std::string& path, std::uint64_t scale = 1) {
  std::ifstream in(path);
  std::uint64_t v = 0;
  if (!(in >> v)) return UINT64_MAX;
  return v > UINT64_MAX / scale ? UINT64_MAX : v * scale;
}

std::uint64_t mem_available() {
  std::ifstream in("/proc/meminfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("MemAvailable:", 0) != 0) continue;
    std::istringstream fields(line.substr(13));
    std::uint64_t kb = 0;
    if (fields >> kb) return kb * 1024;
  }
  return UINT64_MAX;
}

// limit - usage of a cgroup, or UINT64_MAX when unlimited/unknown.
std::uint64_t cgroup_room(const std::string& limit_file, const std::string& usage_file) {
  const std::uint64_t limit = read_number(limit_file);
  if (limit == UINT64_MAX || limit >= (UINT64_C(1) << 60)) return UINT64_MAX;  // v1 says "unlimited" as ~2^63
  const std::uint64_t usage = read_number(usage_file);
  if (usage == UINT64_MAX) return limit;
  return usage >= limit ? 0 : limit - usage;
}

}  // namespace

std::uint64_t available_memory_bytes() {
  return std::min({mem_available(), cgroup_room("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                   cgroup_room("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                               "/sys/fs/cgroup/memory/memory.usage_in_bytes")});
}

void require_memory(const std::string& file, const std::string& what, std::uint64_t bytes) {
  const std::uint64_t available = available_memory_bytes();
  if (bytes > available)
    fail_file("{}: {} needs {}, more than the {} of memory available", file, what, format_bytes(bytes),
         format_bytes(available));
}

}  // namespace kvlab::io
