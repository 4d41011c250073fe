#pragma once
// FNV-1a 64-bit: a stable, platform-independent hash for job identities.
#include <cstdint>
#include <string>
#include <string_view>

#include <fmt/format.h>

namespace kvlab {

inline std::uint64_t fnv1a64(std::string_view data, std::uint64_t h = 0xcbf29ce484222325ULL) {
  for (unsigned char c : data) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

inline std::string hex_hash(std::string_view data) { return fmt::format("{:016x}", fnv1a64(data)); }

}  // namespace kvlab
