#include "kvlab/metrics/attention_kernels.hpp"

#include <algorithm>
#include <cstring>
#include <vector>

// Bit-identical results on every clone need a·b + c rounded twice, as the
// baseline (SSE2) build does: the AVX-512 clone would otherwise fuse them.
#pragma GCC optimize("fp-contract=off")
// The vector helpers are inlined into the clones and never cross a call, so
// the psABI note about passing 32-byte vectors without AVX is moot.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace kvlab {

namespace {

// GCC vector extensions: lane-wise IEEE arithmetic, the same on every ISA.
using f8v = float __attribute__((vector_size(32)));
using d4v = double __attribute__((vector_size(32)));
using f4v = float __attribute__((vector_size(16)));

#define KVLAB_KERNEL __attribute__((target_clones("avx512f", "avx2", "default")))
#define KVLAB_INLINE __attribute__((always_inline)) inline

KVLAB_INLINE f8v load8(const float* p) {
  f8v v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
KVLAB_INLINE void store8(float* p, f8v v) { std::memcpy(p, &v, sizeof v); }
KVLAB_INLINE d4v load4(const double* p) {
  d4v v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
KVLAB_INLINE void store4(double* p, d4v v) { std::memcpy(p, &v, sizeof v); }
KVLAB_INLINE d4v load4_as_double(const float* p) {
  f4v v;
  std::memcpy(&v, p, sizeof v);
  return __builtin_convertvector(v, d4v);
}

float dot_plain(const float* q, const float* k, int d) {
  float acc = 0.0f;
  for (int c = 0; c < d; ++c) acc += q[c] * k[c];
  return acc;
}

// Many queries: the lanes are 16 queries (q transposed into qt [d × 16]),
// two rows at a time.
KVLAB_KERNEL void dot_many_queries(const float* qt, int lanes, const float* k, int rows, std::ptrdiff_t ldk, int d,
                                   float* out, std::ptrdiff_t ldo) {
  int i = 0;
  for (; i + 2 <= rows; i += 2) {
    const float* k0 = k + i * ldk;
    const float* k1 = k0 + ldk;
    f8v a0 = {}, a1 = {}, b0 = {}, b1 = {};
    for (int c = 0; c < d; ++c) {
      const f8v q0 = load8(qt + c * 16), q1 = load8(qt + c * 16 + 8);
      const f8v x = k0[c] - f8v{}, y = k1[c] - f8v{};
      a0 += q0 * x;
      a1 += q1 * x;
      b0 += q0 * y;
      b1 += q1 * y;
    }
    float la[16], lb[16];
    store8(la, a0);
    store8(la + 8, a1);
    store8(lb, b0);
    store8(lb + 8, b1);
    for (int j = 0; j < lanes; ++j) {
      out[j * ldo + i] = la[j];
      out[j * ldo + i + 1] = lb[j];
    }
  }
  for (; i < rows; ++i) {
    const float* k0 = k + i * ldk;
    f8v a0 = {}, a1 = {};
    for (int c = 0; c < d; ++c) {
      const f8v x = k0[c] - f8v{};
      a0 += load8(qt + c * 16) * x;
      a1 += load8(qt + c * 16 + 8) * x;
    }
    float la[16];
    store8(la, a0);
    store8(la + 8, a1);
    for (int j = 0; j < lanes; ++j) out[j * ldo + i] = la[j];
  }
}

// Few queries: the lanes are 8 rows (k transposed into kt [d × 8]).
KVLAB_KERNEL void dot_few_queries(const float* q, int m, std::ptrdiff_t ldq, const float* kt, int d, float* out,
                                  std::ptrdiff_t ldo) {
  for (int j = 0; j < m; ++j) {
    const float* qj = q + j * ldq;
    f8v acc = {};
    for (int c = 0; c < d; ++c) acc += (qj[c] - f8v{}) * load8(kt + c * 8);
    float l[8];
    store8(l, acc);
    std::memcpy(out + j * ldo, l, sizeof l);
  }
}

// R rows of p against one column tile of 8 doubles (two vectors per row).
template <int R>
KVLAB_INLINE void weighted_tile(const double* p, std::ptrdiff_t ldp, const double* vd, int rows, int c0,
                                double* part, std::ptrdiff_t ldpart) {
  d4v a[R][2];
  for (int r = 0; r < R; ++r) {
    a[r][0] = load4(part + r * ldpart + c0);
    a[r][1] = load4(part + r * ldpart + c0 + 4);
  }
  for (int i = 0; i < rows; ++i) {
    const d4v v0 = load4(vd + i * 8), v1 = load4(vd + i * 8 + 4);
    for (int r = 0; r < R; ++r) {
      const d4v w = p[r * ldp + i] - d4v{};
      a[r][0] += w * v0;
      a[r][1] += w * v1;
    }
  }
  for (int r = 0; r < R; ++r) {
    store4(part + r * ldpart + c0, a[r][0]);
    store4(part + r * ldpart + c0 + 4, a[r][1]);
  }
}

// One row of p, a tile of 16 columns read straight from the float rows.
KVLAB_KERNEL void weighted_one(const double* p, const float* v, int rows, std::ptrdiff_t ldv, int c0, double* part) {
  d4v a0 = load4(part + c0), a1 = load4(part + c0 + 4), a2 = load4(part + c0 + 8), a3 = load4(part + c0 + 12);
  for (int i = 0; i < rows; ++i) {
    const d4v w = p[i] - d4v{};
    const float* vi = v + i * ldv + c0;
    a0 += w * load4_as_double(vi);
    a1 += w * load4_as_double(vi + 4);
    a2 += w * load4_as_double(vi + 8);
    a3 += w * load4_as_double(vi + 12);
  }
  store4(part + c0, a0);
  store4(part + c0 + 4, a1);
  store4(part + c0 + 8, a2);
  store4(part + c0 + 12, a3);
}

// vd: the column tile c0 .. c0+7 of the block in double, [rows × 8].
KVLAB_KERNEL void weighted_tiles(const double* p, int m, std::ptrdiff_t ldp, const double* vd, int rows, int c0,
                                 double* part, std::ptrdiff_t ldpart) {
  int r = 0;
  for (; r + 4 <= m; r += 4) weighted_tile<4>(p + r * ldp, ldp, vd, rows, c0, part + r * ldpart, ldpart);
  for (; r < m; ++r) weighted_tile<1>(p + r * ldp, ldp, vd, rows, c0, part + r * ldpart, ldpart);
}

}  // namespace

void dot_logits(const float* q, int m, std::ptrdiff_t ldq, const float* k, int rows, std::ptrdiff_t ldk, int d,
                float* out, std::ptrdiff_t ldo) {
  thread_local std::vector<float> t;
  if (m >= 8) {
    t.resize(static_cast<std::size_t>(d) * 16);
    for (int j0 = 0; j0 < m; j0 += 16) {
      const int lanes = std::min(16, m - j0);
      std::fill(t.begin(), t.end(), 0.0f);
      for (int j = 0; j < lanes; ++j)
        for (int c = 0; c < d; ++c) t[static_cast<std::size_t>(c * 16 + j)] = q[(j0 + j) * ldq + c];
      dot_many_queries(t.data(), lanes, k, rows, ldk, d, out + j0 * ldo, ldo);
    }
    return;
  }
  t.resize(static_cast<std::size_t>(d) * 8);
  int i = 0;
  for (; i + 8 <= rows; i += 8) {
    for (int r = 0; r < 8; ++r)
      for (int c = 0; c < d; ++c) t[static_cast<std::size_t>(c * 8 + r)] = k[(i + r) * ldk + c];
    dot_few_queries(q, m, ldq, t.data(), d, out + i, ldo);
  }
  for (; i < rows; ++i)
    for (int j = 0; j < m; ++j) out[j * ldo + i] = dot_plain(q + j * ldq, k + i * ldk, d);
}

void add_weighted_rows(const double* p, int m, std::ptrdiff_t ldp, const float* v, int rows, std::ptrdiff_t ldv,
                       int d, double* part, std::ptrdiff_t ldpart) {
  int c0 = 0;
  if (m < 4) {  // few rows of p: no conversion pass
    for (; c0 + 16 <= d; c0 += 16)
      for (int r = 0; r < m; ++r) weighted_one(p + r * ldp, v, rows, ldv, c0, part + r * ldpart);
    for (int r = 0; r < m; ++r)
      for (int i = 0; i < rows; ++i)
        for (int c = c0; c < d; ++c) part[r * ldpart + c] += p[r * ldp + i] * static_cast<double>(v[i * ldv + c]);
    return;
  }
  // Many rows of p: each column tile converted to double once for all of them.
  thread_local std::vector<double> vd;
  vd.resize(static_cast<std::size_t>(kWeightedRowBlock) * 8);
  for (; c0 + 8 <= d; c0 += 8) {
    for (int i = 0; i < rows; ++i)
      for (int c = 0; c < 8; ++c) vd[static_cast<std::size_t>(i * 8 + c)] = static_cast<double>(v[i * ldv + c0 + c]);
    weighted_tiles(p, m, ldp, vd.data(), rows, c0, part, ldpart);
  }
  for (int r = 0; r < m; ++r)
    for (int i = 0; i < rows; ++i)
      for (int c = c0; c < d; ++c) part[r * ldpart + c] += p[r * ldp + i] * static_cast<double>(v[i * ldv + c]);
}

void weighted_row_sum(const double* p, ConstMatrixRef values, double* out) {
  const int n = static_cast<int>(values.rows()), d = static_cast<int>(values.cols());
  std::fill(out, out + d, 0.0);
  thread_local std::vector<double> part;
  part.resize(static_cast<std::size_t>(d));
  for (int b = 0; b < n; b += kWeightedRowBlock) {
    std::fill(part.begin(), part.end(), 0.0);
    add_weighted_rows(p + b, 1, 0, values.row(b).data(), std::min(kWeightedRowBlock, n - b), values.outerStride(), d,
                      part.data(), 0);
    for (int c = 0; c < d; ++c) out[c] += part[c];
  }
}

}  // namespace kvlab
