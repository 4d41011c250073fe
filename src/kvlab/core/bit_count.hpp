#pragma once
// Exact storage accounting for one compressed block (K and V together).
// Every field is in bits; see docs/methods.md for each method's formula.
#include <cstdint>

namespace kvlab {

struct BitCount {
  std::uint64_t codes = 0;        // b bits per element of every dense quantized tensor
  std::uint64_t metadata = 0;     // per-group scale / zero point / norms (FP16 unless stated)
  std::uint64_t sparse = 0;       // outliers: 16-bit value + index bits per entry
  std::uint64_t lowrank = 0;      // (rows + cols) · r · 16 per fitted factor pair
  std::uint64_t fp16_buffer = 0;  // tokens kept in FP16 (residual windows, buffers, sinks)
  std::uint64_t index = 0;        // kept-set bitmaps / token indices of droppers

  std::uint64_t total() const { return codes + metadata + sparse + lowrank + fp16_buffer + index; }

  BitCount& operator+=(const BitCount& o) {
    codes += o.codes;
    metadata += o.metadata;
    sparse += o.sparse;
    lowrank += o.lowrank;
    fp16_buffer += o.fp16_buffer;
    index += o.index;
    return *this;
  }
  friend BitCount operator+(BitCount a, const BitCount& b) { return a += b; }
  friend bool operator==(const BitCount&, const BitCount&) = default;
};

// FP16 baseline for `tokens` tokens of K and V with `head_dim` channels.
inline std::uint64_t fp16_baseline_bits(std::uint64_t tokens, std::uint64_t head_dim) {
  return 16ULL * 2ULL * tokens * head_dim;
}

}  // namespace kvlab
