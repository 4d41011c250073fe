#pragma once
// Fixed-width vectors for hot loops (GCC/Clang vector extensions). Lane-wise
// arithmetic rounds the same on every instruction set, so a kernel written
// with them gives bit-identical results in its baseline (SSE2) build and in
// its AVX2 clone, which KVLAB_SIMD_CLONES picks at load time. No FMA: a fused
// multiply-add rounds once and would differ from the separate multiply and add
// (CMakeLists.txt sets -ffp-contract=off, so the compiler never fuses either).
// The vectors never cross a non-inlined call, so GCC's -Wpsabi note (their
// ABI differs without AVX) is switched off in CMakeLists.txt.
#include <cstdint>
#include <cstring>
#include <limits>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define KVLAB_SIMD_CLONES __attribute__((target_clones("avx2", "default")))
#define KVLAB_SIMD_INLINE inline __attribute__((always_inline))

namespace kvlab::simd {

using f8 = float __attribute__((vector_size(32)));
using f4 = float __attribute__((vector_size(16)));
using i8 = std::int32_t __attribute__((vector_size(32)));  // lane masks: 0 or -1
using i4 = std::int32_t __attribute__((vector_size(16)));
using u8 = std::uint32_t __attribute__((vector_size(32)));
using b8 = std::uint8_t __attribute__((vector_size(8)));
using d4 = double __attribute__((vector_size(32)));

KVLAB_SIMD_INLINE f8 load8(const float* p) {
  f8 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
KVLAB_SIMD_INLINE void store8(float* p, f8 v) { std::memcpy(p, &v, sizeof v); }
KVLAB_SIMD_INLINE d4 load4(const double* p) {
  d4 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
KVLAB_SIMD_INLINE void store4(double* p, d4 v) { std::memcpy(p, &v, sizeof v); }
// c in every lane (c − 0 is c for every c, −0 included).
KVLAB_SIMD_INLINE f8 constant8(float c) { return c - f8{}; }

// std::min / std::max lane by lane, with their exact semantics.
KVLAB_SIMD_INLINE f8 min8(f8 a, f8 b) { return b < a ? b : a; }
KVLAB_SIMD_INLINE f8 max8(f8 a, f8 b) { return a < b ? b : a; }

// Whether any byte of p[0..8) is non-zero.
KVLAB_SIMD_INLINE bool any8(const std::uint8_t* p) {
  std::uint64_t w;
  std::memcpy(&w, p, sizeof w);
  return w != 0;
}

// Lanes whose byte in p[0..8) is non-zero. (GCC lowers a plain byte-to-int
// conversion lane by lane; the SSE2 unpacks widen all eight bytes at once.)
KVLAB_SIMD_INLINE i8 mask8(const std::uint8_t* p) {
#if defined(__SSE2__)
  const __m128i zero = _mm_cmpeq_epi8(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)), _mm_setzero_si128());
  const __m128i w = _mm_unpacklo_epi8(zero, zero);
  const i4 lo = reinterpret_cast<i4>(_mm_unpacklo_epi16(w, w)), hi = reinterpret_cast<i4>(_mm_unpackhi_epi16(w, w));
  return ~__builtin_shufflevector(lo, hi, 0, 1, 2, 3, 4, 5, 6, 7);
#else
  b8 b;
  std::memcpy(&b, p, sizeof b);
  return __builtin_convertvector(b, i8) != 0;
#endif
}

// Bit l set where lane l of m is set (m's lanes are 0 or -1).
KVLAB_SIMD_INLINE unsigned movemask8(i8 m) {
#if defined(__SSE2__)
  __m128 lo, hi;
  std::memcpy(&lo, &m, sizeof lo);
  std::memcpy(&hi, reinterpret_cast<const char*>(&m) + sizeof lo, sizeof hi);
  return static_cast<unsigned>(_mm_movemask_ps(lo) | (_mm_movemask_ps(hi) << 4));
#else
  unsigned bits = 0;
  for (int l = 0; l < 8; ++l) bits |= (m[l] != 0 ? 1u : 0u) << l;
  return bits;
#endif
}

// ((v0 + v4) + (v1 + v5)) + ((v2 + v6) + (v3 + v7)) for four vectors at once:
// the fixed lane-reduction order of the dot-product kernels.
KVLAB_SIMD_INLINE f4 reduce4(f8 a, f8 b, f8 c, f8 d) {
  const f4 ha = __builtin_shufflevector(a, a, 0, 1, 2, 3) + __builtin_shufflevector(a, a, 4, 5, 6, 7);
  const f4 hb = __builtin_shufflevector(b, b, 0, 1, 2, 3) + __builtin_shufflevector(b, b, 4, 5, 6, 7);
  const f4 hc = __builtin_shufflevector(c, c, 0, 1, 2, 3) + __builtin_shufflevector(c, c, 4, 5, 6, 7);
  const f4 hd = __builtin_shufflevector(d, d, 0, 1, 2, 3) + __builtin_shufflevector(d, d, 4, 5, 6, 7);
  // [h0 + h1, h2 + h3] of a and b, then of c and d.
  const f4 ab = __builtin_shufflevector(ha, hb, 0, 2, 4, 6) + __builtin_shufflevector(ha, hb, 1, 3, 5, 7);
  const f4 cd = __builtin_shufflevector(hc, hd, 0, 2, 4, 6) + __builtin_shufflevector(hc, hd, 1, 3, 5, 7);
  return __builtin_shufflevector(ab, cd, 0, 2, 4, 6) + __builtin_shufflevector(ab, cd, 1, 3, 5, 7);
}

// Lane j of the result is op over the eight lanes of v[j] (op: min8 or
// max8), for eight vectors at once: three rounds of shuffles instead of 56
// scalar steps. The pairing order differs from a left-to-right sweep, which
// for min/max of non-NaN floats changes at most the sign of a zero result.
template <class Op>
KVLAB_SIMD_INLINE f8 reduce_lanes8(const f8* v, Op op) {
  f8 h[4], q[2];
  for (int k = 0; k < 4; ++k)  // lanes 0-3: v[2k]'s halves combined, lanes 4-7: v[2k+1]'s
    h[k] = op(__builtin_shufflevector(v[2 * k], v[2 * k + 1], 0, 1, 2, 3, 8, 9, 10, 11),
              __builtin_shufflevector(v[2 * k], v[2 * k + 1], 4, 5, 6, 7, 12, 13, 14, 15));
  for (int k = 0; k < 2; ++k)  // pairs of lanes: v[4k], v[4k+2], v[4k+1], v[4k+3]
    q[k] = op(__builtin_shufflevector(h[2 * k], h[2 * k + 1], 0, 1, 8, 9, 4, 5, 12, 13),
              __builtin_shufflevector(h[2 * k], h[2 * k + 1], 2, 3, 10, 11, 6, 7, 14, 15));
  return op(__builtin_shufflevector(q[0], q[1], 0, 4, 2, 6, 8, 12, 10, 14),
            __builtin_shufflevector(q[0], q[1], 1, 5, 3, 7, 9, 13, 11, 15));
}

// The value each lane takes once stored as FP16 (round to nearest, ties to
// even; ±inf beyond ±65504; FP16 subnormals below 2^-14): bit for bit what
// round_to_fp16 (core/fp16.hpp) gives, for every float but NaN payloads.
KVLAB_SIMD_INLINE f8 round8_to_fp16(f8 x) {
  u8 u;
  std::memcpy(&u, &x, sizeof u);
  const u8 sign = u & 0x80000000u, a = u & 0x7FFFFFFFu;
  f8 ax, normal;
  std::memcpy(&ax, &a, sizeof ax);
  // FP16 normals keep 10 of float's 23 mantissa bits: round the low 13 in
  // the integer domain (a carry moves into the exponent, as it should).
  const u8 rounded = (a + 0x0FFFu + ((a >> 13) & 1u)) & ~0x1FFFu;
  std::memcpy(&normal, &rounded, sizeof normal);
  normal = normal > 65504.0f ? constant8(std::numeric_limits<float>::infinity()) : normal;
  // FP16 subnormals are multiples of 2^-24, the spacing of floats in [0.5, 1):
  // adding and removing 0.5 rounds to them.
  const f8 subnormal = (ax + 0.5f) - 0.5f;
  f8 r = ax < 0x1p-14f ? subnormal : normal;
  r = ax != ax ? ax : r;  // NaN stays NaN
  u8 ru;
  std::memcpy(&ru, &r, sizeof ru);
  ru |= sign;
  std::memcpy(&r, &ru, sizeof r);
  return r;
}

}  // namespace kvlab::simd
