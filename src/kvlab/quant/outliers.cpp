#include "kvlab/quant/outliers.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>

#include "kvlab/core/error.hpp"
#include "kvlab/core/fp16.hpp"
#include "kvlab/core/simd.hpp"

namespace kvlab {

namespace {

// Per-token selection for k >= 2 (one row at a time, rows are short).
// Streaming selection of the k smallest and k largest (value, position) pairs
// of one vector, fed in position order: a bounded max-heap keeps the k
// smallest, a min-heap the k largest, both ordered by (value, position), so
// ties resolve as a stable sort would. Because positions arrive increasing, a
// new (x, i) enters the smallest set iff x < lo_thr and the largest set iff
// x >= hi_thr; the common case is the two comparisons. O(log k) per entry.
struct TopK {
  int k;
  int nlo = 0, nhi = 0;
  float lo_thr = std::numeric_limits<float>::infinity();
  float hi_thr = -std::numeric_limits<float>::infinity();
  std::vector<float> lo_v, hi_v;
  std::vector<int> lo_i, hi_i;

  explicit TopK(int count) : k(count), lo_v(count), hi_v(count), lo_i(count), hi_i(count) {}

  void reset() {
    nlo = nhi = 0;
    lo_thr = std::numeric_limits<float>::infinity();
    hi_thr = -std::numeric_limits<float>::infinity();
  }
  // Sift-down / sift-up on parallel (value, index) arrays; `before(a, b)` is
  // true when a belongs nearer the root than b.
  template <typename Before>
  static void sift_down(float* v, int* idx, int n, int pos, Before before) {
    while (true) {
      int best = pos;
      const int l = 2 * pos + 1, r = l + 1;
      if (l < n && before(v[l], idx[l], v[best], idx[best])) best = l;
      if (r < n && before(v[r], idx[r], v[best], idx[best])) best = r;
      if (best == pos) return;
      std::swap(v[pos], v[best]);
      std::swap(idx[pos], idx[best]);
      pos = best;
    }
  }
  template <typename Before>
  static void sift_up(float* v, int* idx, int pos, Before before) {
    while (pos > 0) {
      const int parent = (pos - 1) / 2;
      if (!before(v[pos], idx[pos], v[parent], idx[parent])) return;
      std::swap(v[pos], v[parent]);
      std::swap(idx[pos], idx[parent]);
      pos = parent;
    }
  }
  static bool larger(float a, int ai, float b, int bi) { return a > b || (a == b && ai > bi); }
  static bool smaller(float a, int ai, float b, int bi) { return a < b || (a == b && ai < bi); }

  void insert(float* v, int* idx, int& count, float x, int i, bool max_heap) {
    auto before = [max_heap](float a, int ai, float b, int bi) {
      return max_heap ? larger(a, ai, b, bi) : smaller(a, ai, b, bi);
    };
    if (count < k) {
      v[count] = x;
      idx[count] = i;
      sift_up(v, idx, count++, before);
    } else {
      v[0] = x;  // replace the root (the worst kept entry)
      idx[0] = i;
      sift_down(v, idx, k, 0, before);
    }
  }
  void push(float x, int i) {
    if (x < lo_thr) {
      insert(lo_v.data(), lo_i.data(), nlo, x, i, /*max_heap=*/true);
      if (nlo == k) lo_thr = lo_v[0];
    }
    if (x >= hi_thr) {
      insert(hi_v.data(), hi_i.data(), nhi, x, i, /*max_heap=*/false);
      if (nhi == k) hi_thr = hi_v[0];
    }
  }
};

// Marks (r, c) and records its value, still unrounded (round_values does it
// for all entries at the end).
void keep(OutlierSet& s, int r, int c, float value) {
  if (s.mask(r, c)) return;
  s.mask(r, c) = 1;
  s.entries.push_back({r, c, value});
}
void keep(OutlierSet& s, ConstMatrixRef x, int r, int c) { keep(s, r, c, x(r, c)); }

using simd::f8;
using simd::i8;
constexpr float kInf = std::numeric_limits<float>::infinity();

// Every entry's value rounded to FP16, eight at a time.
KVLAB_SIMD_CLONES void round_values(SparseEntry* e, std::size_t count) {
  std::size_t i = 0;
  for (; i + 8 <= count; i += 8) {
    float v[8];
    for (int l = 0; l < 8; ++l) v[l] = e[i + l].value;
    const f8 r = simd::round8_to_fp16(simd::load8(v));
    for (int l = 0; l < 8; ++l) e[i + l].value = r[l];
  }
  for (; i < count; ++i) e[i].value = round_to_fp16(e[i].value);
}

// Per row, the position of the first minimum and of the last maximum: what
// the (value, position) order picks for k = 1. Min and max eight lanes at a
// time, then the first / last position holding that value.
KVLAB_SIMD_CLONES void row_extremes(const float* x, Eigen::Index ld, int n, int d, int* first_min, int* last_max) {
  const int d8 = d / 8 * 8;
  const i8 lane = {0, 1, 2, 3, 4, 5, 6, 7};
  const i8 none_lo = lane - lane + d, none_hi = lane - lane - 1;
  for (int r = 0; r < n; ++r) {
    const float* row = x + r * ld;
    f8 mn8 = simd::constant8(kInf), mx8 = simd::constant8(-kInf);
    for (int c = 0; c < d8; c += 8) {
      const f8 v = simd::load8(row + c);
      mn8 = simd::min8(mn8, v);
      mx8 = simd::max8(mx8, v);
    }
    float mn = kInf, mx = -kInf;
    for (int l = 0; l < 8; ++l) {
      mn = std::min(mn, mn8[l]);
      mx = std::max(mx, mx8[l]);
    }
    for (int c = d8; c < d; ++c) {
      mn = std::min(mn, row[c]);
      mx = std::max(mx, row[c]);
    }
    i8 lo = none_lo, hi = none_hi;
    for (int c = 0; c < d8; c += 8) {
      const f8 v = simd::load8(row + c);
      const i8 pos = lane + c;
      const i8 at_min = v == mn ? pos : none_lo, at_max = v == mx ? pos : none_hi;
      lo = at_min < lo ? at_min : lo;
      hi = hi < at_max ? at_max : hi;
    }
    int imin = d, imax = -1;
    for (int l = 0; l < 8; ++l) {
      imin = std::min(imin, lo[l]);
      imax = std::max(imax, hi[l]);
    }
    for (int c = d8; c < d; ++c) {
      if (row[c] == mn) imin = std::min(imin, c);
      if (row[c] == mx) imax = c;
    }
    first_min[r] = imin;
    last_max[r] = imax;
  }
}

// ---- Per-channel selection: sampled thresholds, candidates, exact selection.

struct Candidate {
  float value;
  int pos;
};

constexpr int kSampleStride = 16;
constexpr int kMaxSampleRank = 64;

// m: the sample rank of the thresholds (about 2k + 48 entries of a column
// are expected beyond its m-th smallest / largest sample); 0 = no sampling
// (short columns, or very large k): every column is then selected directly.
int sample_rank(int n, int k) {
  const int samples = (n + kSampleStride - 1) / kSampleStride;
  const int m = (2 * k + 32) / kSampleStride + 1;
  return (samples < 4 * m || m > kMaxSampleRank) ? 0 : m;
}

// lo[c] / hi[c]: the m-th smallest / largest of every 16th entry of column c,
// eight columns at a time by insertion into lane-wise sorted lists.
KVLAB_SIMD_CLONES void sample_thresholds(const float* x, Eigen::Index ld, int n, int d, int m, float* lo, float* hi) {
  const int samples = (n + kSampleStride - 1) / kSampleStride;
  const int d8 = d / 8 * 8;
  f8 small[kMaxSampleRank], large[kMaxSampleRank];
  for (int c = 0; c < d8; c += 8) {
    for (int i = 0; i < m; ++i) {
      small[i] = simd::constant8(kInf);
      large[i] = simd::constant8(-kInf);
    }
    for (int j = 0; j < samples; ++j) {
      f8 a = simd::load8(x + static_cast<Eigen::Index>(j) * kSampleStride * ld + c), b = a;
      for (int i = 0; i < m; ++i) {  // a (b) carries the value displaced from position i
        const f8 s = small[i], t = large[i];
        small[i] = simd::min8(s, a);
        a = simd::max8(s, a);
        large[i] = simd::max8(t, b);
        b = simd::min8(t, b);
      }
    }
    simd::store8(lo + c, small[m - 1]);
    simd::store8(hi + c, large[m - 1]);
  }
  std::vector<float> column(static_cast<std::size_t>(samples));
  for (int c = d8; c < d; ++c) {
    for (int j = 0; j < samples; ++j) column[j] = x[static_cast<Eigen::Index>(j) * kSampleStride * ld + c];
    std::sort(column.begin(), column.end());
    lo[c] = column[m - 1];
    hi[c] = column[samples - m];
  }
}

// Per column, the entries below lo[c] ("low" candidates) and at or above hi[c]
// ("high"), in row order, up to `cap` each; counts go on past cap, so an
// overflowing column is recognised and selected directly instead.
struct CandidateLists {
  int cap;
  std::unique_ptr<Candidate[]> low, high;  // column c: [c·cap, c·cap + cap), not zero-filled
  std::vector<int> n_low, n_high;
  CandidateLists(int d, int capacity)
      : cap(capacity),
        low(std::make_unique_for_overwrite<Candidate[]>(static_cast<std::size_t>(d) * capacity)),
        high(std::make_unique_for_overwrite<Candidate[]>(static_cast<std::size_t>(d) * capacity)),
        n_low(static_cast<std::size_t>(d), 0),
        n_high(static_cast<std::size_t>(d), 0) {}
};

KVLAB_SIMD_INLINE void add_candidates(std::uint64_t bits, int c0, const float* row, int r, Candidate* list,
                                      std::vector<int>& count, int cap) {
  while (bits != 0) {
    const int c = c0 + __builtin_ctzll(bits);
    bits &= bits - 1;
    const int i = count[c]++;
    if (i < cap) list[static_cast<std::size_t>(c) * cap + i] = {row[c], r};
  }
}

// One pass over the rows: eight columns are tested per vector compare, and
// only the few entries beyond a threshold are visited one by one.
KVLAB_SIMD_CLONES void collect_candidates(const float* x, Eigen::Index ld, int n, int d, const float* lo,
                                          const float* hi, CandidateLists& out) {
  for (int r = 0; r < n; ++r) {
    const float* row = x + r * ld;
    for (int c0 = 0; c0 < d; c0 += 64) {
      const int c1 = std::min(d, c0 + 64), c8 = c0 + (c1 - c0) / 8 * 8;
      std::uint64_t below = 0, above = 0;
      for (int c = c0; c < c8; c += 8) {
        const f8 v = simd::load8(row + c);
        below |= static_cast<std::uint64_t>(simd::movemask8(v < simd::load8(lo + c))) << (c - c0);
        above |= static_cast<std::uint64_t>(simd::movemask8(v >= simd::load8(hi + c))) << (c - c0);
      }
      for (int c = c8; c < c1; ++c) {
        below |= static_cast<std::uint64_t>(row[c] < lo[c]) << (c - c0);
        above |= static_cast<std::uint64_t>(row[c] >= hi[c]) << (c - c0);
      }
      add_candidates(below, c0, row, r, out.low.get(), out.n_low, out.cap);
      add_candidates(above, c0, row, r, out.high.get(), out.n_high, out.cap);
    }
  }
}

// The value of rank `rank` (0-based) in ascending order among v[0..n): a
// quickselect whose partitions are branch-free (every element is written to
// both sides and the side counters advance by the comparison), so random data
// costs no mispredicted branches. v is overwritten; tmp holds 2n floats.
float select_rank(float* v, int n, int rank, float* tmp) {
  float* lower = tmp;
  float* upper = tmp + n;
  while (n > 8) {
    const float a = v[0], b = v[n / 2], c = v[n - 1];
    const float pivot = std::max(std::min(a, b), std::min(std::max(a, b), c));  // median of three
    int nl = 0, nu = 0;
    for (int i = 0; i < n; ++i) {
      const float x = v[i];
      lower[nl] = x;
      upper[nu] = x;
      nl += x < pivot;
      nu += x > pivot;
    }
    if (rank < nl) {
      std::swap(v, lower);
      n = nl;
    } else if (rank >= n - nu) {
      rank -= n - nu;
      std::swap(v, upper);
      n = nu;
    } else {
      return pivot;
    }
  }
  std::sort(v, v + n);
  return v[rank];
}

// Keeps the k smallest (or largest) of `cands` in the (value, position) order,
// in position order. cands holds at least k entries, in position order, and
// every entry of the column not among them lies beyond all of them. The k-th
// value v comes from a selection on the values alone; then every entry
// before v is kept and, of those equal to v, the first (last) ones in position.
// The scans are branch-free (about a third of the candidates are kept, at
// random), so only the final k entries are visited one by one.
void keep_extreme(OutlierSet& s, int col, const Candidate* cands, int count, int k, bool largest,
                  std::vector<float>& scratch, std::vector<Candidate>& kept) {
  scratch.resize(static_cast<std::size_t>(3 * count));
  for (int i = 0; i < count; ++i) scratch[i] = cands[i].value;
  const float v = select_rank(scratch.data(), count, largest ? count - k : k - 1, scratch.data() + count);
  int beyond = 0, equal = 0;  // entries strictly before v in the order, and equal to it
  for (int i = 0; i < count; ++i) {
    beyond += largest ? cands[i].value > v : cands[i].value < v;
    equal += cands[i].value == v;
  }
  // Of the entries equal to v, keep those with index (among them) in [first, first + k − beyond).
  const int first = largest ? equal - (k - beyond) : 0, last = first + (k - beyond);
  kept.resize(static_cast<std::size_t>(count));
  int n = 0, seen = 0;
  for (int i = 0; i < count; ++i) {
    const float x = cands[i].value;
    const bool eq = x == v;
    const bool take = (largest ? x > v : x < v) | (eq & (seen >= first) & (seen < last));
    seen += eq;
    kept[n] = cands[i];
    n += take;
  }
  for (int i = 0; i < n; ++i) keep(s, kept[i].pos, col, kept[i].value);
}

struct SelectionScratch {
  std::vector<Candidate> column, kept;
  std::vector<float> values;
};

void keep_column_extremes(OutlierSet& s, ConstMatrixRef x, int col, int k, SelectionScratch& w) {
  const int n = static_cast<int>(x.rows());
  w.column.resize(static_cast<std::size_t>(n));
  for (int r = 0; r < n; ++r) w.column[r] = {x(r, col), r};
  keep_extreme(s, col, w.column.data(), n, k, false, w.values, w.kept);
  keep_extreme(s, col, w.column.data(), n, k, true, w.values, w.kept);
}

void per_channel_outliers(ConstMatrixRef x, int k, OutlierSet& s) {
  const int n = static_cast<int>(x.rows()), d = static_cast<int>(x.cols());
  SelectionScratch w;
  const int m = sample_rank(n, k);
  if (m == 0) {
    for (int c = 0; c < d; ++c) keep_column_extremes(s, x, c, k, w);
    return;
  }
  std::vector<float> lo(static_cast<std::size_t>(d)), hi(static_cast<std::size_t>(d));
  sample_thresholds(x.data(), x.outerStride(), n, d, m, lo.data(), hi.data());
  // About 2k + 48 candidates are expected per side; room for four times that.
  const int samples = (n + kSampleStride - 1) / kSampleStride;
  CandidateLists lists(d, std::min(n, 4 * static_cast<int>(static_cast<std::int64_t>(n) * m / samples) + 64));
  collect_candidates(x.data(), x.outerStride(), n, d, lo.data(), hi.data(), lists);
  for (int c = 0; c < d; ++c) {
    const int nl = lists.n_low[c], nh = lists.n_high[c];
    if (nl < k || nh < k || nl > lists.cap || nh > lists.cap) {  // the sample misled: select directly
      keep_column_extremes(s, x, c, k, w);
      continue;
    }
    const std::size_t at = static_cast<std::size_t>(c) * lists.cap;
    keep_extreme(s, c, lists.low.get() + at, nl, k, false, w.values, w.kept);
    keep_extreme(s, c, lists.high.get() + at, nh, k, true, w.values, w.kept);
  }
}

}  // namespace

int outlier_count_per_side(const OutlierConfig& cfg, int m) {
  if (cfg.count >= 0) return cfg.count;
  if (!(cfg.sparsity > 0.0)) return 0;
  // A small epsilon guards against s·m/2 landing a hair under an integer.
  return static_cast<int>(std::floor(cfg.sparsity * m / 2.0 + 1e-9));
}

namespace {
void select_outliers(ConstMatrixRef x, const OutlierConfig& cfg, OutlierSet& s);
}

OutlierSet extract_outliers(ConstMatrixRef x, const OutlierConfig& cfg) {
  OutlierSet s;
  select_outliers(x, cfg, s);
  round_values(s.entries.data(), s.entries.size());
  return s;
}

namespace {
void select_outliers(ConstMatrixRef x, const OutlierConfig& cfg, OutlierSet& s) {
  const int n = static_cast<int>(x.rows()), d = static_cast<int>(x.cols());
  s.mask = ElementMask::Zero(n, d);
  if (n == 0 || d == 0) return;
  const bool per_token = cfg.axis == QuantAxis::PerToken;
  const int m = per_token ? d : n;            // vector length
  const int vectors = per_token ? n : d;
  const int k = outlier_count_per_side(cfg, m);
  if (k <= 0) return;
  if (2LL * k >= m) {  // the whole vector is kept
    s.entries.reserve(static_cast<std::size_t>(n) * d);
    for (int r = 0; r < n; ++r)
      for (int c = 0; c < d; ++c) keep(s, x, r, c);
    return;
  }
  s.entries.reserve(static_cast<std::size_t>(vectors) * 2 * k);
  if (per_token && k == 1) {
    // The common case (100 ≤ d < 150 at s = 0.02).
    std::vector<int> first_min(static_cast<std::size_t>(n)), last_max(static_cast<std::size_t>(n));
    row_extremes(x.data(), x.outerStride(), n, d, first_min.data(), last_max.data());
    for (int r = 0; r < n; ++r) {
      keep(s, x, r, first_min[r]);
      keep(s, x, r, last_max[r]);
    }
  } else if (per_token) {
    TopK t(k);
    for (int r = 0; r < n; ++r) {
      t.reset();
      const float* row = x.row(r).data();
      // Chunks of 16 that cannot beat the current thresholds are skipped with
      // one vectorizable test; the thresholds only tighten, so this is exact.
      constexpr int kChunk = 16;
      for (int c0 = 0; c0 < d; c0 += kChunk) {
        const int c1 = std::min(d, c0 + kChunk);
        bool any = false;
        for (int c = c0; c < c1; ++c) any |= (row[c] < t.lo_thr) | (row[c] >= t.hi_thr);
        if (!any) continue;
        for (int c = c0; c < c1; ++c) t.push(row[c], c);
      }
      for (int j = 0; j < k; ++j) keep(s, x, r, t.lo_i[j]);
      for (int j = 0; j < k; ++j) keep(s, x, r, t.hi_i[j]);
    }
  } else {
    per_channel_outliers(x, k, s);
  }
}
}  // namespace

void add_outliers(const OutlierSet& s, MatrixRef out) {
  for (const SparseEntry& e : s.entries) out(e.row, e.col) += e.value;
}

}  // namespace kvlab
