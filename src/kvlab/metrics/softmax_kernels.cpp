#include "kvlab/metrics/softmax_kernels.hpp"

#include <cmath>
#include <cstring>
#include <limits>

// Lane-wise a·b + c must round twice on every clone (no FMA contraction).
#pragma GCC optimize("fp-contract=off")
#pragma GCC diagnostic ignored "-Wpsabi"  // vectors never cross a call: all helpers are inlined

namespace kvlab {

namespace {

using d4v = double __attribute__((vector_size(32)));
using i4v = std::int64_t __attribute__((vector_size(32)));
using f4v = float __attribute__((vector_size(16)));

#define KVLAB_KERNEL __attribute__((target_clones("avx512f", "avx2", "default")))
#define KVLAB_INLINE __attribute__((always_inline)) inline

constexpr int kLanes = 8;  // two d4v: lanes 0-3 and 4-7
constexpr double kInf = std::numeric_limits<double>::infinity();

KVLAB_INLINE d4v splat(double x) { return x - d4v{}; }
KVLAB_INLINE d4v load4(const double* p) {
  d4v v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
KVLAB_INLINE void store4(double* p, const d4v& v) { std::memcpy(p, &v, sizeof v); }
KVLAB_INLINE d4v load4_as_double(const float* p) {
  f4v v;
  std::memcpy(&v, p, sizeof v);
  return __builtin_convertvector(v, d4v);
}
// Lanes with present[i] != 0 (all when present is null), as an all-ones mask.
KVLAB_INLINE i4v present4(const std::uint8_t* present, int i) {
  if (present == nullptr) return i4v{} - 1;
  const i4v m = {present[i], present[i + 1], present[i + 2], present[i + 3]};
  return m != 0;
}
KVLAB_INLINE d4v select(const i4v& mask, const d4v& a, const d4v& b) { return mask ? a : b; }

using d8v = double __attribute__((vector_size(64)));
using i8v = std::int64_t __attribute__((vector_size(64)));
using f8v = float __attribute__((vector_size(32)));

// exp(x), x <= 0: x = n·ln2 + r (Cody–Waite), e^r by its Taylor series to
// r^13 (|r| <= 0.35: truncation < 5e-18), 2^n applied in two halves so
// results down to the smallest subnormal round once. DV/IV: 4 or 8 lanes.
template <class DV, class IV>
KVLAB_INLINE DV exp_t(const DV& x_in) {
  const DV x = (x_in < -1400.0) ? (-1400.0 - DV{}) : x_in;
  const DV magic = 0x1.8p52 - DV{};
  const DV t = x * 1.4426950408889634 + magic;  // n = round(x / ln 2) in t's low bits
  const DV n = t - magic;
  const DV r = (x - n * 6.93147180369123816490e-01) - n * 1.90821492927058770002e-10;
  // Σ_{k<=13} r^k / k!, evaluated by Estrin's scheme (short dependency chains).
  const DV r2 = r * r, r4 = r2 * r2, r8 = r4 * r4;
  const DV p01 = 1.0 + r, p23 = 0.5 + r * (1.0 / 6), p45 = (1.0 / 24) + r * (1.0 / 120),
           p67 = (1.0 / 720) + r * (1.0 / 5040), p89 = (1.0 / 40320) + r * (1.0 / 362880),
           pab = (1.0 / 3628800) + r * (1.0 / 39916800), pcd = (1.0 / 479001600) + r * (1.0 / 6227020800);
  const DV q0 = p01 + p23 * r2, q1 = p45 + p67 * r2, q2 = p89 + pab * r2;
  const DV e = (q0 + q1 * r4) + (q2 + pcd * r4) * r8;
  IV ti, mi;
  std::memcpy(&ti, &t, sizeof ti);
  std::memcpy(&mi, &magic, sizeof mi);
  const IV k = ti - mi;  // n as an integer
  const IV half = k >> 1;
  const IV s1 = (half + 1023) << 52, s2 = (k - half + 1023) << 52;
  DV f1, f2;
  std::memcpy(&f1, &s1, sizeof f1);
  std::memcpy(&f2, &s2, sizeof f2);
  return (e * f1) * f2;
}

// Pairwise: (l0 + l4) ... then (+2), (+1).
KVLAB_INLINE double combine(const d4v& lo, const d4v& hi) {
  const d4v s = lo + hi;
  return (s[0] + s[2]) + (s[1] + s[3]);
}

// Copies a tail of fewer than 8 positions into padded buffers: absent
// padding, so it adds nothing.
struct Tail {
  float z[kLanes] = {}, z_hat[kLanes] = {};
  double p[kLanes] = {}, p_hat[kLanes] = {};
  std::uint8_t present[kLanes] = {};
};

KVLAB_KERNEL double max_scaled(const float* z, int n, double scale, const std::uint8_t* present, int full) {
  d4v m0 = splat(-kInf), m1 = splat(-kInf);
  for (int i = 0; i < full; i += kLanes) {
    const d4v a0 = scale * load4_as_double(z + i), a1 = scale * load4_as_double(z + i + 4);
    m0 = select(present4(present, i) & (a0 > m0), a0, m0);
    m1 = select(present4(present, i + 4) & (a1 > m1), a1, m1);
  }
  double mx = -kInf;
  for (int l = 0; l < 4; ++l) mx = std::max(mx, std::max(m0[l], m1[l]));
  for (int i = full; i < n; ++i)
    if (present == nullptr || present[i]) mx = std::max(mx, scale * z[i]);
  return mx;
}

// p_i = exp(scale·z_i − mx) at present positions (0 elsewhere); returns the
// lane sums combined.
// Eight positions from i: p = exp(scale·z − mx) where present, else 0.
KVLAB_INLINE void exp8(const float* z, const std::uint8_t* present, int i, double scale, double mx, double* p,
                       d4v& s0, d4v& s1) {
  const d4v e0 = select(present4(present, i), exp_t<d4v, i4v>(scale * load4_as_double(z + i) - mx), d4v{});
  const d4v e1 = select(present4(present, i + 4), exp_t<d4v, i4v>(scale * load4_as_double(z + i + 4) - mx), d4v{});
  store4(p + i, e0);
  store4(p + i + 4, e1);
  s0 += e0;
  s1 += e1;
}

// exp8 with one 8-lane vector (AVX-512): the same lanes, the same operations.
KVLAB_INLINE void exp8_wide(const float* z, const std::uint8_t* present, int i, double scale, double mx, double* p,
                            d8v& s) {
  f8v zf;
  std::memcpy(&zf, z + i, sizeof zf);
  d8v e = exp_t<d8v, i8v>(scale * __builtin_convertvector(zf, d8v) - mx);
  if (present != nullptr) {
    const i8v m = {present[i], present[i + 1], present[i + 2], present[i + 3],
                   present[i + 4], present[i + 5], present[i + 6], present[i + 7]};
    e = (m != 0) ? e : d8v{};
  }
  std::memcpy(p + i, &e, sizeof e);
  s += e;
}

__attribute__((target("avx512f"))) double exp_and_sum_512(const float* z, int full, double scale, double mx,
                                                            const std::uint8_t* present, double* p, Tail* tail) {
  d8v s = {};
  for (int i = 0; i < full; i += kLanes) exp8_wide(z, present, i, scale, mx, p, s);
  if (tail != nullptr) exp8_wide(tail->z, tail->present, 0, scale, mx, tail->p, s);
  const d4v lo = {s[0], s[1], s[2], s[3]}, hi = {s[4], s[5], s[6], s[7]};
  return combine(lo, hi);
}

// p_i = exp(scale·z_i − mx) at present positions (0 elsewhere), the tail in
// `tail`; returns the lane sums combined.
KVLAB_KERNEL double exp_and_sum(const float* z, int full, double scale, double mx, const std::uint8_t* present,
                                double* p, Tail* tail) {
  d4v s0 = {}, s1 = {};
  for (int i = 0; i < full; i += kLanes) exp8(z, present, i, scale, mx, p, s0, s1);
  if (tail != nullptr) exp8(tail->z, tail->present, 0, scale, mx, tail->p, s0, s1);
  return combine(s0, s1);
}

KVLAB_KERNEL void divide(double* p, int n, double sum) {
  const d4v s = splat(sum);
  int i = 0;
  for (; i + 4 <= n; i += 4) store4(p + i, load4(p + i) / s);
  for (; i < n; ++i) p[i] /= sum;
}

KVLAB_INLINE void mass4(const double* p, const std::uint8_t* present, int i, d4v& kept, d4v& dropped) {
  const i4v m = present4(present, i);
  const d4v a = load4(p + i);
  kept += select(m, a, d4v{});
  dropped += select(m, d4v{}, a);
}

struct KlTerms {
  double scale, ref_max, hat_max, kept, offset, rev_offset;
};

KVLAB_INLINE void kl4(const float* z, const double* p, const float* z_hat, const double* p_hat,
                      const std::uint8_t* present, int i, const KlTerms& c, d4v& kl, d4v& rev) {
  const d4v pv = load4(p + i), qv = load4(p_hat + i);
  const d4v a = c.scale * load4_as_double(z + i) - c.ref_max;
  const d4v ah = c.scale * load4_as_double(z_hat + i) - c.hat_max;
  kl += select(present4(present, i) & (pv != 0.0), pv / c.kept * ((a - ah) + c.offset), d4v{});
  rev += select(qv > 0.0, qv * ((ah - a) - c.rev_offset), d4v{});
}

KVLAB_KERNEL ScoreSums sums(const float* z, const double* p, const SoftmaxNorm& ref, const float* z_hat,
                            const double* p_hat, const SoftmaxNorm& hat, const std::uint8_t* present, int full,
                            double scale, const Tail* tail) {
  // Pass 1: kept and dropped mass.
  d4v k0 = {}, k1 = {}, d0 = {}, d1 = {};
  for (int i = 0; i < full; i += kLanes) {
    mass4(p, present, i, k0, d0);
    mass4(p, present, i + 4, k1, d1);
  }
  if (tail != nullptr) {
    mass4(tail->p, tail->present, 0, k0, d0);
    mass4(tail->p, tail->present, 4, k1, d1);
  }
  ScoreSums s;
  s.kept = combine(k0, k1);
  s.dropped = combine(d0, d1);
  if (!std::isfinite(hat.log_sum)) return s;  // nothing present: p̂ is 0
  // Pass 2: both KLs.
  KlTerms c;
  c.scale = scale;
  c.ref_max = ref.max;
  c.hat_max = hat.max;
  c.kept = s.dropped == 0.0 ? 1.0 : s.kept;  // Σp is 1 up to rounding; keep an exact cache exact
  c.offset = hat.log_sum - ref.log_sum - std::log(c.kept);
  c.rev_offset = hat.log_sum - ref.log_sum;
  d4v f0 = {}, f1 = {}, r0 = {}, r1 = {};
  for (int i = 0; i < full; i += kLanes) {
    kl4(z, p, z_hat, p_hat, present, i, c, f0, r0);
    kl4(z, p, z_hat, p_hat, present, i + 4, c, f1, r1);
  }
  if (tail != nullptr) {
    kl4(tail->z, tail->p, tail->z_hat, tail->p_hat, tail->present, 0, c, f0, r0);
    kl4(tail->z, tail->p, tail->z_hat, tail->p_hat, tail->present, 4, c, f1, r1);
  }
  s.kl = c.kept > 0.0 ? combine(f0, f1) : 0.0;
  s.kl_rev = combine(r0, r1);
  return s;
}

}  // namespace

double exp_nonpositive(double x) { return exp_t<d4v, i4v>(splat(x))[0]; }

SoftmaxNorm softmax_into(const float* z, int n, double scale, const std::uint8_t* present, double* p) {
  const int full = n / kLanes * kLanes;
  const double mx = max_scaled(z, n, scale, present, full);
  if (!std::isfinite(mx)) {
    std::fill(p, p + n, 0.0);
    return {mx, -kInf};
  }
  Tail tail;
  for (int i = full; i < n; ++i) {
    tail.z[i - full] = z[i];
    tail.present[i - full] = present == nullptr || present[i];
  }
  static const bool wide = __builtin_cpu_supports("avx512f");
  const double sum = (wide ? exp_and_sum_512 : exp_and_sum)(z, full, scale, mx, present, p, full < n ? &tail : nullptr);
  for (int i = full; i < n; ++i) p[i] = tail.p[i - full];
  divide(p, n, sum);
  return {mx, std::log(sum)};
}

ScoreSums score_sums(const float* z, const double* p, const SoftmaxNorm& ref, const float* z_hat,
                     const double* p_hat, const SoftmaxNorm& hat, const std::uint8_t* present, int n, double scale) {
  const int full = n / kLanes * kLanes;
  Tail tail;
  for (int i = full; i < n; ++i) {
    const int l = i - full;
    tail.z[l] = z[i];
    tail.z_hat[l] = z_hat[i];
    tail.p[l] = p[i];
    tail.p_hat[l] = p_hat[i];
    tail.present[l] = present == nullptr || present[i];
  }
  return sums(z, p, ref, z_hat, p_hat, hat, present, full, scale, full < n ? &tail : nullptr);
}

}  // namespace kvlab
