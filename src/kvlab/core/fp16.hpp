#pragma once
// IEEE half-precision conversions (round-to-nearest-even), used for FP16 storage
// of quantization metadata and for reading float16 dumps.
#include <Eigen/Core>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace kvlab {

inline float half_bits_to_float(std::uint16_t bits) {
  return static_cast<float>(Eigen::numext::bit_cast<Eigen::half>(bits));
}

inline std::uint16_t float_to_half_bits(float x) {
  return Eigen::numext::bit_cast<std::uint16_t>(Eigen::half(x));
}

// The value a float takes once stored as FP16 (what a real cache would keep).
inline float round_to_fp16(float x) { return static_cast<float>(Eigen::half(x)); }

// dst[i] = half_bits_to_float(src[i]) for n values (the conversion is exact),
// with the CPU's F16C instructions where it has them and `threads` OpenMP
// threads for large n.
void decode_half(const std::uint16_t* src, float* dst, std::size_t n, int threads = 1);

}  // namespace kvlab
