#include "kvlab/core/fp16.hpp"

#include <immintrin.h>

#include <algorithm>

namespace kvlab {

namespace {

void decode_scalar(const std::uint16_t* src, float* dst, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) dst[i] = half_bits_to_float(src[i]);
}

// vcvtph2ps converts every binary16 value exactly, like the scalar path.
__attribute__((target("avx,f16c"))) void decode_f16c(const std::uint16_t* src, float* dst, std::size_t n) {
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
  decode_scalar(src + i, dst + i, n - i);
}

void decode_chunk(const std::uint16_t* src, float* dst, std::size_t n) {
  static const bool f16c = __builtin_cpu_supports("avx") && __builtin_cpu_supports("f16c");
  if (f16c)
    decode_f16c(src, dst, n);
  else
    decode_scalar(src, dst, n);
}

}  // namespace

void decode_half(const std::uint16_t* src, float* dst, std::size_t n, int threads) {
  constexpr std::size_t kChunk = std::size_t{1} << 16;
  const auto chunks = static_cast<long long>((n + kChunk - 1) / kChunk);
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1 && chunks > 1)
  for (long long c = 0; c < chunks; ++c) {
    const std::size_t begin = static_cast<std::size_t>(c) * kChunk;
    decode_chunk(src + begin, dst + begin, std::min(kChunk, n - begin));
  }
}

}  // namespace kvlab
