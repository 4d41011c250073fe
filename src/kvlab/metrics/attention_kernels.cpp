#include "kvlab/metrics/attention_kernels.hpp"

#include <algorithm>
#include <cstring>
#include <vector>

// Bit-identical results on every CPU need a·b + c rounded twice, as the
// baseline (SSE2) build does: the AVX-512 variants would otherwise fuse them.
#pragma GCC optimize("fp-contract=off")
// The vector helpers are inlined into the kernels and never cross a call, so
// the psABI note about passing wide vectors without AVX is moot.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace kvlab {

namespace {

// GCC vector extensions: lane-wise IEEE arithmetic, the same on every ISA.
// Each kernel is a template over the vector width, instantiated for AVX-512
// (64-byte vectors) and for AVX2/SSE2 (32-byte vectors, cloned); a lane is
// one output element, so the width never changes an element's operations.
using f8v = float __attribute__((vector_size(32)));
using f16v = float __attribute__((vector_size(64)));
using d4v = double __attribute__((vector_size(32)));
using d8v = double __attribute__((vector_size(64)));

#define KVLAB_INLINE __attribute__((always_inline)) inline
#define KVLAB_AVX512 __attribute__((target("avx512f")))
#define KVLAB_AVX2 __attribute__((target_clones("avx2", "default")))

template <class V>
constexpr int lanes_of = static_cast<int>(sizeof(V) / sizeof(V{}[0]));

template <class V, class T>
KVLAB_INLINE V load(const T* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <class V, class T>
KVLAB_INLINE void store(T* p, const V& v) {
  std::memcpy(p, &v, sizeof v);
}

bool has_avx512() {
  static const bool yes = __builtin_cpu_supports("avx512f");
  return yes;
}

float dot_plain(const float* q, const float* k, int d) {
  float acc = 0.0f;
  for (int c = 0; c < d; ++c) acc += q[c] * k[c];
  return acc;
}

// Many queries: the lanes are 16 queries (q transposed into qt [d × 16]),
// two rows at a time.
template <class FV>
KVLAB_INLINE void dot_many_t(const float* qt, int lanes, const float* k, int rows, std::ptrdiff_t ldk, int d,
                             float* out, std::ptrdiff_t ldo) {
  constexpr int W = lanes_of<FV>, N = 16 / W, R = 4;  // R rows per pass share each load of qt
  for (int i = 0; i < rows; i += R) {
    const int n = std::min(R, rows - i);
    const float* kr[R];
    for (int r = 0; r < R; ++r) kr[r] = k + (i + std::min(r, n - 1)) * ldk;
    FV a[R][N] = {};
    for (int c = 0; c < d; ++c)
      for (int v = 0; v < N; ++v) {
        const FV qv = load<FV>(qt + c * 16 + v * W);
        for (int r = 0; r < R; ++r) a[r][v] += qv * (kr[r][c] - FV{});
      }
    for (int r = 0; r < n; ++r) {
      float l[16];
      for (int v = 0; v < N; ++v) store(l + v * W, a[r][v]);
      for (int j = 0; j < lanes; ++j) out[j * ldo + i + r] = l[j];
    }
  }
}
KVLAB_AVX512 void dot_many_512(const float* qt, int lanes, const float* k, int rows, std::ptrdiff_t ldk, int d,
                               float* out, std::ptrdiff_t ldo) {
  dot_many_t<f16v>(qt, lanes, k, rows, ldk, d, out, ldo);
}
KVLAB_AVX2 void dot_many_256(const float* qt, int lanes, const float* k, int rows, std::ptrdiff_t ldk, int d,
                             float* out, std::ptrdiff_t ldo) {
  dot_many_t<f8v>(qt, lanes, k, rows, ldk, d, out, ldo);
}

// Few queries: the lanes are 8 rows (k transposed into kt [d × 8]).
KVLAB_AVX2 void dot_few(const float* q, int m, std::ptrdiff_t ldq, const float* kt, int d, float* out,
                        std::ptrdiff_t ldo) {
  for (int j = 0; j < m; ++j) {
    const float* qj = q + j * ldq;
    f8v acc = {};
    for (int c = 0; c < d; ++c) acc += (qj[c] - f8v{}) * load<f8v>(kt + c * 8);
    store(out + j * ldo, acc);
  }
}

template <class DV>
struct FloatsOf;  // the float vector with as many lanes as DV
template <>
struct FloatsOf<d4v> {
  using type = float __attribute__((vector_size(16)));
};
template <>
struct FloatsOf<d8v> {
  using type = f8v;
};

// One row of p: tiles of four vectors of columns read straight from the
// float rows (no conversion pass for a single row). Returns the first column
// not covered.
template <class DV>
KVLAB_INLINE int weighted_one_t(const double* p, const float* v, int rows, std::ptrdiff_t ldv, int d,
                                double* part) {
  constexpr int W = lanes_of<DV>;
  using FV = typename FloatsOf<DV>::type;
  int c0 = 0;
  for (; c0 + 4 * W <= d; c0 += 4 * W) {
    DV a[4];
    for (int t = 0; t < 4; ++t) a[t] = load<DV>(part + c0 + t * W);
    for (int i = 0; i < rows; ++i) {
      const DV w = p[i] - DV{};
      for (int t = 0; t < 4; ++t) a[t] += w * __builtin_convertvector(load<FV>(v + i * ldv + c0 + t * W), DV);
    }
    for (int t = 0; t < 4; ++t) store(part + c0 + t * W, a[t]);
  }
  return c0;
}
KVLAB_AVX512 int weighted_one_512(const double* p, const float* v, int rows, std::ptrdiff_t ldv, int d,
                                  double* part) {
  return weighted_one_t<d8v>(p, v, rows, ldv, d, part);
}
KVLAB_AVX2 int weighted_one_256(const double* p, const float* v, int rows, std::ptrdiff_t ldv, int d, double* part) {
  return weighted_one_t<d4v>(p, v, rows, ldv, d, part);
}

// R rows of p against a tile of two vectors of columns from c0 of the block
// held in double (vd, row stride ldvd).
template <class DV, int R>
KVLAB_INLINE void weighted_tile(const double* p, std::ptrdiff_t ldp, const double* vd, std::ptrdiff_t ldvd, int rows,
                                int c0, double* part, std::ptrdiff_t ldpart) {
  constexpr int W = lanes_of<DV>;
  DV a[R][2];
  for (int r = 0; r < R; ++r) {
    a[r][0] = load<DV>(part + r * ldpart + c0);
    a[r][1] = load<DV>(part + r * ldpart + c0 + W);
  }
  for (int i = 0; i < rows; ++i) {
    const DV v0 = load<DV>(vd + i * ldvd + c0), v1 = load<DV>(vd + i * ldvd + c0 + W);
    for (int r = 0; r < R; ++r) {
      const DV w = p[r * ldp + i] - DV{};
      a[r][0] += w * v0;
      a[r][1] += w * v1;
    }
  }
  for (int r = 0; r < R; ++r) {
    store(part + r * ldpart + c0, a[r][0]);
    store(part + r * ldpart + c0 + W, a[r][1]);
  }
}

// Returns the first column not covered by whole tiles.
template <class DV>
KVLAB_INLINE int weighted_tiles_t(const double* p, int m, std::ptrdiff_t ldp, const double* vd, std::ptrdiff_t ldvd,
                                  int rows, int d, double* part, std::ptrdiff_t ldpart) {
  constexpr int T = 2 * lanes_of<DV>;
  int c0 = 0;
  for (; c0 + T <= d; c0 += T) {
    // As many rows of p per pass as the registers hold (32 vector registers with AVX-512, 16 without).
    constexpr int R = lanes_of<DV> == 8 ? 8 : 4;
    int r = 0;
    for (; r + R <= m; r += R)
      weighted_tile<DV, R>(p + r * ldp, ldp, vd, ldvd, rows, c0, part + r * ldpart, ldpart);
    for (; r < m; ++r) weighted_tile<DV, 1>(p + r * ldp, ldp, vd, ldvd, rows, c0, part + r * ldpart, ldpart);
  }
  return c0;
}
KVLAB_AVX512 int weighted_tiles_512(const double* p, int m, std::ptrdiff_t ldp, const double* vd,
                                    std::ptrdiff_t ldvd, int rows, int d, double* part, std::ptrdiff_t ldpart) {
  return weighted_tiles_t<d8v>(p, m, ldp, vd, ldvd, rows, d, part, ldpart);
}
KVLAB_AVX2 int weighted_tiles_256(const double* p, int m, std::ptrdiff_t ldp, const double* vd, std::ptrdiff_t ldvd,
                                  int rows, int d, double* part, std::ptrdiff_t ldpart) {
  return weighted_tiles_t<d4v>(p, m, ldp, vd, ldvd, rows, d, part, ldpart);
}

template <class DV>
KVLAB_INLINE void to_double_t(const float* v, int rows, std::ptrdiff_t ldv, int d, double* out) {
  constexpr int W = lanes_of<DV>;
  using FV = typename FloatsOf<DV>::type;
  for (int i = 0; i < rows; ++i) {
    int c = 0;
    for (; c + W <= d; c += W) store(out + i * d + c, __builtin_convertvector(load<FV>(v + i * ldv + c), DV));
    for (; c < d; ++c) out[i * d + c] = static_cast<double>(v[i * ldv + c]);
  }
}
KVLAB_AVX512 void to_double_512(const float* v, int rows, std::ptrdiff_t ldv, int d, double* out) {
  to_double_t<d8v>(v, rows, ldv, d, out);
}
KVLAB_AVX2 void to_double_256(const float* v, int rows, std::ptrdiff_t ldv, int d, double* out) {
  to_double_t<d4v>(v, rows, ldv, d, out);
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
      if (has_avx512())
        dot_many_512(t.data(), lanes, k, rows, ldk, d, out + j0 * ldo, ldo);
      else
        dot_many_256(t.data(), lanes, k, rows, ldk, d, out + j0 * ldo, ldo);
    }
    return;
  }
  t.resize(static_cast<std::size_t>(d) * 8);
  int i = 0;
  for (; i + 8 <= rows; i += 8) {
    for (int r = 0; r < 8; ++r)
      for (int c = 0; c < d; ++c) t[static_cast<std::size_t>(c * 8 + r)] = k[(i + r) * ldk + c];
    dot_few(q, m, ldq, t.data(), d, out + i, ldo);
  }
  for (; i < rows; ++i)
    for (int j = 0; j < m; ++j) out[j * ldo + i] = dot_plain(q + j * ldq, k + i * ldk, d);
}

void add_weighted_rows(const double* p, int m, std::ptrdiff_t ldp, const float* v, int rows, std::ptrdiff_t ldv,
                       int d, double* part, std::ptrdiff_t ldpart) {
  const bool wide = has_avx512();
  if (m < 4) {  // few rows of p: convert as they are read
    for (int r = 0; r < m; ++r) {
      double* out = part + r * ldpart;
      const double* pr = p + r * ldp;
      const int c0 = (wide ? weighted_one_512 : weighted_one_256)(pr, v, rows, ldv, d, out);
      for (int i = 0; i < rows; ++i)
        for (int c = c0; c < d; ++c) out[c] += pr[i] * static_cast<double>(v[i * ldv + c]);
    }
    return;
  }
  // Many rows of p: the block converted to double once for all of them.
  thread_local std::vector<double> vd;
  vd.resize(static_cast<std::size_t>(kWeightedRowBlock) * static_cast<std::size_t>(d));
  (wide ? to_double_512 : to_double_256)(v, rows, ldv, d, vd.data());
  const int c0 = (wide ? weighted_tiles_512 : weighted_tiles_256)(p, m, ldp, vd.data(), d, rows, d, part, ldpart);
  for (int r = 0; r < m; ++r)
    for (int i = 0; i < rows; ++i)
      for (int c = c0; c < d; ++c) part[r * ldpart + c] += p[r * ldp + i] * vd[static_cast<std::size_t>(i * d + c)];
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
