#include "kvlab/quant/outliers.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kvlab/core/error.hpp"
#include "kvlab/core/fp16.hpp"

namespace kvlab {

namespace {

// Streaming selection of the k smallest and k largest (value, position) pairs
// of one vector, fed in position order. Both buffers are sorted ascending.
// Because positions arrive increasing, a new (x, i) is below the current k-th
// smallest iff x < lo.back() and above the current k-th largest iff
// x >= hi.front(); the common case is two comparisons per element.
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
  void insert_lo(float x, int i) {
    // upper_bound on value: equal values (earlier positions) stay before.
    int p = static_cast<int>(std::upper_bound(lo_v, lo_v + nlo, x) - lo_v);
    const int last = nlo < k ? nlo : k - 1;  // element dropped when full
    for (int j = last; j > p; --j) {
      lo_v[j] = lo_v[j - 1];
      lo_i[j] = lo_i[j - 1];
    }
    lo_v[p] = x;
    lo_i[p] = i;
    if (nlo < k) ++nlo;
    if (nlo == k) lo_thr = lo_v[k - 1];
  }
  void insert_hi(float x, int i) {
    int p = static_cast<int>(std::upper_bound(hi_v, hi_v + nhi, x) - hi_v);
    if (nhi < k) {
      for (int j = nhi; j > p; --j) {
        hi_v[j] = hi_v[j - 1];
        hi_i[j] = hi_i[j - 1];
      }
      hi_v[p] = x;
      hi_i[p] = i;
      ++nhi;
    } else {
      // Drop the smallest (index 0), shift [1, p) down, insert at p - 1.
      for (int j = 0; j + 1 < p; ++j) {
        hi_v[j] = hi_v[j + 1];
        hi_i[j] = hi_i[j + 1];
      }
      hi_v[p - 1] = x;
      hi_i[p - 1] = i;
    }
    if (nhi == k) hi_thr = hi_v[0];
  }
  void push(float x, int i) {
    if (x < lo_thr) insert_lo(x, i);
    if (x >= hi_thr) insert_hi(x, i);
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
  if (per_token) {
    TopKStorage st(1, k);
    TopK& t = st.sel[0];
    for (int r = 0; r < n; ++r) {
      t.reset();
      const float* row = x.row(r).data();
      for (int c = 0; c < d; ++c) t.push(row[c], c);
      for (int j = 0; j < k; ++j) keep(s, x, r, t.lo_i[j]);
      for (int j = 0; j < k; ++j) keep(s, x, r, t.hi_i[j]);
    }
  } else {
    // All columns at once, row by row: contiguous reads of the row-major block.
    TopKStorage st(d, k);
    for (int r = 0; r < n; ++r) {
      const float* row = x.row(r).data();
      for (int c = 0; c < d; ++c) {
        TopK& t = st.sel[c];
        const float v = row[c];
        if (v < t.lo_thr || v >= t.hi_thr) t.push(v, r);
      }
    }
    for (int c = 0; c < d; ++c) {
      const TopK& t = st.sel[c];
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
