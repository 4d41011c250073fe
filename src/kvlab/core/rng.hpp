#pragma once
// Deterministic random streams. A stream depends only on (seed, layer, head,
// purpose), never on thread scheduling, so results are identical for any
// thread count.
#include <cmath>
#include <cstdint>

namespace kvlab {

inline std::uint64_t splitmix64(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// xoshiro256** seeded through splitmix64.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) {
    std::uint64_t sm = seed;
    for (auto& s : s_) s = splitmix64(sm);
  }
  // A stream for one (layer, head) block and purpose tag.
  static Rng for_block(std::uint64_t seed, int layer, int head, std::uint64_t purpose = 0) {
    std::uint64_t sm = seed ^ 0xD1B54A32D192ED03ULL;
    std::uint64_t a = splitmix64(sm) ^ static_cast<std::uint64_t>(layer + 1) * 0x9E3779B97F4A7C15ULL;
    std::uint64_t b = splitmix64(a) ^ static_cast<std::uint64_t>(head + 1) * 0xC2B2AE3D27D4EB4FULL;
    std::uint64_t c = splitmix64(b) ^ (purpose + 1) * 0x165667B19E3779F9ULL;
    return Rng(splitmix64(c));
  }

  std::uint64_t next_u64() {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  // Uniform in [0, 1).
  double uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }
  // Standard normal (Box-Muller; one value per call for simplicity and determinism).
  double normal() {
    double u1 = uniform();
    if (u1 < 1e-300) u1 = 1e-300;
    const double u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
  std::uint64_t below(std::uint64_t n) { return n == 0 ? 0 : next_u64() % n; }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::uint64_t s_[4];
};

}  // namespace kvlab
