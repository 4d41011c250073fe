#include "kvlab/quant/outliers.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kvlab/core/error.hpp"
#include "kvlab/core/fp16.hpp"

namespace kvlab {

namespace {

// Streaming selection of the k smallest and k largest (value, position) pairs
// of one vector, fed in position order: a bounded max-heap keeps the k
// smallest, a min-heap the k largest, both ordered by (value, position), so
// ties resolve as a stable sort would. Because positions arrive increasing, a
// new (x, i) enters the smallest set iff x < lo_thr and the largest set iff
// x >= hi_thr; the common case is the two comparisons. O(log k) per entry.
struct TopK {
  int k = 0;
  int nlo = 0, nhi = 0;
  float lo_thr = std::numeric_limits<float>::infinity();
  float hi_thr = -std::numeric_limits<float>::infinity();
  float* lo_v;
  int* lo_i;
  float* hi_v;
  int* hi_i;

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
  void push(float x, int i) { push_sides(x, i, true, true); }
  // lo_side / hi_side: x may enter that side at all (a primed threshold).
  void push_sides(float x, int i, bool lo_side, bool hi_side) {
    if (lo_side && x < lo_thr) {
      insert(lo_v, lo_i, nlo, x, i, /*max_heap=*/true);
      if (nlo == k) lo_thr = lo_v[0];
    }
    if (hi_side && x >= hi_thr) {
      insert(hi_v, hi_i, nhi, x, i, /*max_heap=*/false);
      if (nhi == k) hi_thr = hi_v[0];
    }
  }
};

struct TopKStorage {
  std::vector<float> v;
  std::vector<int> i;
  std::vector<TopK> sel;
  TopKStorage(int vectors, int k) : v(static_cast<std::size_t>(vectors) * 2 * k), i(v.size()), sel(vectors) {
    for (int j = 0; j < vectors; ++j) {
      TopK& t = sel[j];
      t.k = k;
      t.lo_v = v.data() + static_cast<std::size_t>(j) * 2 * k;
      t.hi_v = t.lo_v + k;
      t.lo_i = i.data() + static_cast<std::size_t>(j) * 2 * k;
      t.hi_i = t.lo_i + k;
    }
  }
};

// hit[c] = row[c] beats column c's current low or high threshold; returns
// whether any does. Branch-free, so it vectorizes.
bool any_beyond(const float* row, const float* lo, const float* hi, std::uint8_t* hit, int d) {
  std::uint8_t any = 0;
  for (int c = 0; c < d; ++c) {
    hit[c] = static_cast<std::uint8_t>((row[c] < lo[c]) | (row[c] >= hi[c]));
    any |= hit[c];
  }
  return any != 0;
}

// Per column, thresholds that at least k entries beat with high probability:
// the m-th smallest / largest of every 16th row, m chosen so that about 2k + 32
// entries of the column are expected beyond it. ±inf (no priming) for short
// columns. Exactness does not depend on them (see the rescan above).
void primed_thresholds(ConstMatrixRef x, int k, std::vector<float>& lo, std::vector<float>& hi) {
  const int n = static_cast<int>(x.rows()), d = static_cast<int>(x.cols());
  constexpr int kStride = 16;
  lo.assign(d, std::numeric_limits<float>::infinity());
  hi.assign(d, -std::numeric_limits<float>::infinity());
  const int samples = (n + kStride - 1) / kStride;
  const int m = (2 * k + 32) / kStride + 1;
  if (samples < 4 * m) return;
  std::vector<float> column(samples);
  for (int c = 0; c < d; ++c) {
    for (int j = 0; j < samples; ++j) column[j] = x(j * kStride, c);
    std::nth_element(column.begin(), column.begin() + (m - 1), column.end());
    lo[c] = column[m - 1];
    std::nth_element(column.begin() + m, column.end() - m, column.end());
    hi[c] = column[samples - m];
  }
}

void keep(OutlierSet& s, ConstMatrixRef x, int r, int c) {
  if (s.mask(r, c)) return;
  s.mask(r, c) = 1;
  s.entries.push_back({r, c, round_to_fp16(x(r, c))});
}

}  // namespace

int outlier_count_per_side(const OutlierConfig& cfg, int m) {
  if (cfg.count >= 0) return cfg.count;
  if (!(cfg.sparsity > 0.0)) return 0;
  // A small epsilon guards against s·m/2 landing a hair under an integer.
  return static_cast<int>(std::floor(cfg.sparsity * m / 2.0 + 1e-9));
}

OutlierSet extract_outliers(ConstMatrixRef x, const OutlierConfig& cfg) {
  const int n = static_cast<int>(x.rows()), d = static_cast<int>(x.cols());
  OutlierSet s;
  s.mask = ElementMask::Zero(n, d);
  if (n == 0 || d == 0) return s;
  const bool per_token = cfg.axis == QuantAxis::PerToken;
  const int m = per_token ? d : n;            // vector length
  const int vectors = per_token ? n : d;
  const int k = outlier_count_per_side(cfg, m);
  if (k <= 0) return s;
  if (2LL * k >= m) {  // the whole vector is kept
    s.entries.reserve(static_cast<std::size_t>(n) * d);
    for (int r = 0; r < n; ++r)
      for (int c = 0; c < d; ++c) keep(s, x, r, c);
    return s;
  }
  s.entries.reserve(static_cast<std::size_t>(vectors) * 2 * k);
  if (per_token && k == 1) {
    // The common case (d ≤ 149 at s = 0.02): one pass per row for the first
    // minimum and the last maximum, which is what (value, position) order picks.
    for (int r = 0; r < n; ++r) {
      const float* row = x.row(r).data();
      int imin = 0, imax = 0;
      float mn = row[0], mx = row[0];
      for (int c = 1; c < d; ++c) {
        if (row[c] < mn) {
          mn = row[c];
          imin = c;
        }
        if (row[c] >= mx) {
          mx = row[c];
          imax = c;
        }
      }
      keep(s, x, r, imin);
      keep(s, x, r, imax);
    }
  } else if (per_token) {
    TopKStorage st(1, k);
    TopK& t = st.sel[0];
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
    // All columns at once, row by row: contiguous reads of the row-major block.
    // The thresholds live in flat arrays so the per-row test vectorizes; only
    // the few entries that beat a threshold touch the selection structures.
    // The thresholds start from a sample (primed_thresholds), so only a few
    // percent of the entries ever reach the heaps; a column whose sample
    // threshold turns out too tight is redone exactly without it.
    TopKStorage st(d, k);
    std::vector<float> primed_lo, primed_hi;
    primed_thresholds(x, k, primed_lo, primed_hi);
    std::vector<float> lo = primed_lo, hi = primed_hi;
    std::vector<std::uint8_t> hit(d);
    for (int r = 0; r < n; ++r) {
      const float* row = x.row(r).data();
      if (!any_beyond(row, lo.data(), hi.data(), hit.data(), d)) continue;
      for (int c = 0; c < d; ++c) {
        if (!hit[c]) continue;
        TopK& t = st.sel[c];
        t.push_sides(row[c], r, row[c] < primed_lo[c], row[c] >= primed_hi[c]);
        lo[c] = std::min(primed_lo[c], t.lo_thr);
        hi[c] = std::max(primed_hi[c], t.hi_thr);
      }
    }
    for (int c = 0; c < d; ++c) {
      TopK& t = st.sel[c];
      if (t.nlo < k || t.nhi < k) {  // fewer than k entries beat the sample threshold: exact rescan
        t.reset();
        for (int r = 0; r < n; ++r) t.push(x(r, c), r);
      }
      for (int j = 0; j < k; ++j) keep(s, x, t.lo_i[j], c);
      for (int j = 0; j < k; ++j) keep(s, x, t.hi_i[j], c);
    }
  }
  return s;
}

void add_outliers(const OutlierSet& s, MatrixRef out) {
  for (const SparseEntry& e : s.entries) out(e.row, e.col) += e.value;
}

}  // namespace kvlab
