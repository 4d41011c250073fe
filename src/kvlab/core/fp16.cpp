#include "kvlab/core/fp16.hpp"

#include <cpuid.h>
#include <immintrin.h>

#include <algorithm>

namespace kvlab {

namespace {

// A binary16 value is Inf or NaN when its exponent bits are all set.
constexpr std::uint16_t kExponent = 0x7C00;

bool decode_scalar(const std::uint16_t* src, float* dst, std::size_t n) {
  bool finite = true;
  for (std::size_t i = 0; i < n; ++i) {
    dst[i] = half_bits_to_float(src[i]);
    finite = finite && (src[i] & kExponent) != kExponent;
  }
  return finite;
}

// vcvtph2ps converts every binary16 value exactly, like the scalar path.
__attribute__((target("avx,f16c"))) bool decode_f16c(const std::uint16_t* src, float* dst, std::size_t n) {
  const __m128i exponent = _mm_set1_epi16(static_cast<short>(kExponent));
  __m128i bad = _mm_setzero_si128();
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
    bad = _mm_or_si128(bad, _mm_cmpeq_epi16(_mm_and_si128(h, exponent), exponent));
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
  }
  const bool tail = decode_scalar(src + i, dst + i, n - i);
  return tail && _mm_movemask_epi8(bad) == 0;
}

// CPUID leaf 1, ECX: F16C (bit 29) and AVX usable, i.e. AVX (28) with OS-saved
// YMM state (OSXSAVE, 27, and XCR0 bits 1-2). Asked directly because clang 14's
// __builtin_cpu_supports does not know "f16c".
bool cpu_has_f16c() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid(1, &eax, &ebx, &ecx, &edx) == 0) return false;
  const bool avx = (ecx & (1u << 28)) != 0 && (ecx & (1u << 27)) != 0;
  if (!avx || (ecx & (1u << 29)) == 0) return false;
  unsigned xcr0_lo = 0, xcr0_hi = 0;
  __asm__("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  return (xcr0_lo & 0x6u) == 0x6u;
}

bool decode_chunk(const std::uint16_t* src, float* dst, std::size_t n) {
  static const bool f16c = cpu_has_f16c();
  return f16c ? decode_f16c(src, dst, n) : decode_scalar(src, dst, n);
}

}  // namespace

bool decode_half(const std::uint16_t* src, float* dst, std::size_t n, int threads) {
  constexpr std::size_t kChunk = std::size_t{1} << 16;
  const auto chunks = static_cast<long long>((n + kChunk - 1) / kChunk);
  bool finite = true;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1 && chunks > 1) reduction(&& : finite)
  for (long long c = 0; c < chunks; ++c) {
    const std::size_t begin = static_cast<std::size_t>(c) * kChunk;
    finite = decode_chunk(src + begin, dst + begin, std::min(kChunk, n - begin)) && finite;
  }
  return finite;
}

}  // namespace kvlab
