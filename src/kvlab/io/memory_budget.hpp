#pragma once
// How much memory a read may take, checked before allocating: a file whose
// header promises more than the machine has is refused with a message
// instead of ending in std::bad_alloc or the OOM killer.
#include <cstdint>
#include <string>

namespace kvlab::io {

// Memory the process can still take: the kernel's MemAvailable, capped by the
// cgroup's memory limit (v1 or v2) minus its usage. UINT64_MAX when neither
// can be read.
std::uint64_t available_memory_bytes();

// Throws "<file>: <what> needs <bytes>, more than the <available> of memory
// available" when `bytes` exceeds available_memory_bytes().
void require_memory(const std::string& file, const std::string& what, std::uint64_t bytes);

}  // namespace kvlab::io
