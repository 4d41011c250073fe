#include "kvlab/quant/nonuniform.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kvlab/core/error.hpp"
#include "kvlab/core/fp16.hpp"

namespace kvlab {

void LevelHistogram::add(float u) {
  if (!(u >= 0.0f)) u = 0.0f;
  if (u > 1.0f) u = 1.0f;
  const int b = std::min(kBins - 1, static_cast<int>(u * kBins));
  sum_[b] += u;
  count_[b] += 1.0;
  total_ += 1.0;
}

std::vector<float> uniform_levels(int k) {
  std::vector<float> l(k);
  for (int j = 0; j < k; ++j) l[j] = round_to_fp16(k == 1 ? 0.5f : static_cast<float>(j) / static_cast<float>(k - 1));
  return l;
}

std::vector<float> LevelHistogram::kmeans(int k, int iterations) const {
  if (total_ <= 0.0) return uniform_levels(k);
  std::vector<double> pos, w;
  for (int b = 0; b < kBins; ++b)
    if (count_[b] > 0) {
      pos.push_back(sum_[b] / count_[b]);
      w.push_back(count_[b]);
    }
  const int m = static_cast<int>(pos.size());
  // Quantile init.
  std::vector<double> c(k);
  {
    double acc = 0.0;
    int j = 0;
    for (int i = 0; i < m && j < k; ++i) {
      acc += w[i];
      while (j < k && acc >= (j + 0.5) / k * total_) c[j++] = pos[i];
    }
    for (; j < k; ++j) c[j] = pos[m - 1];
  }
  std::vector<double> s(k), n(k);
  for (int it = 0; it < iterations; ++it) {
    std::fill(s.begin(), s.end(), 0.0);
    std::fill(n.begin(), n.end(), 0.0);
    // Points are sorted and centers are sorted: sweep assignments.
    int j = 0;
    for (int i = 0; i < m; ++i) {
      while (j + 1 < k && std::abs(pos[i] - c[j + 1]) < std::abs(pos[i] - c[j])) ++j;
      s[j] += w[i] * pos[i];
      n[j] += w[i];
    }
    bool moved = false;
    for (int q = 0; q < k; ++q)
      if (n[q] > 0) {
        const double nc = s[q] / n[q];
        moved |= nc != c[q];
        c[q] = nc;
      }
    std::sort(c.begin(), c.end());
    if (!moved) break;
  }
  std::vector<float> l(k);
  for (int q = 0; q < k; ++q) l[q] = round_to_fp16(static_cast<float>(c[q]));
  std::sort(l.begin(), l.end());
  return l;
}

std::vector<float> kmeans_levels(const std::vector<float>& values, int k, int iterations) {
  LevelHistogram h;
  for (float v : values) h.add(v);
  return h.kmeans(k, iterations);
}

namespace {

struct VecParams {
  float zero, scale;
};

// Per-vector min/max (outliers excluded) → FP16 zero and scale.
std::vector<VecParams> vector_params(ConstMatrixRef x, QuantAxis axis, const ElementMask* ex) {
  const int n = static_cast<int>(x.rows()), d = static_cast<int>(x.cols());
  const bool per_token = axis == QuantAxis::PerToken;
  const int vecs = per_token ? n : d;
  std::vector<float> mn(vecs, std::numeric_limits<float>::infinity()), mx(vecs, -std::numeric_limits<float>::infinity());
  for (int r = 0; r < n; ++r)
    for (int c = 0; c < d; ++c) {
      if (ex && (*ex)(r, c)) continue;
      const int v = per_token ? r : c;
      mn[v] = std::min(mn[v], x(r, c));
      mx[v] = std::max(mx[v], x(r, c));
    }
  std::vector<VecParams> p(vecs);
  for (int v = 0; v < vecs; ++v) {
    if (!(mn[v] <= mx[v])) {
      p[v] = {0.0f, 0.0f};
      continue;
    }
    p[v].zero = round_to_fp16(mn[v]);
    p[v].scale = round_to_fp16(mx[v] - mn[v]);
  }
  return p;
}

}  // namespace

void add_normalised(ConstMatrixRef x, QuantAxis axis, const ElementMask* ex, LevelHistogram& h) {
  const auto p = vector_params(x, axis, ex);
  const bool per_token = axis == QuantAxis::PerToken;
  for (int r = 0; r < x.rows(); ++r)
    for (int c = 0; c < x.cols(); ++c) {
      if (ex && (*ex)(r, c)) continue;
      const VecParams q = p[per_token ? r : c];
      if (q.scale == 0.0f) continue;
      h.add((x(r, c) - q.zero) / q.scale);
    }
}

BitCount nuq_quantize(ConstMatrixRef x, QuantAxis axis, const std::vector<float>& levels, MatrixRef out,
                      const ElementMask* ex) {
  const int n = static_cast<int>(x.rows()), d = static_cast<int>(x.cols());
  const int k = static_cast<int>(levels.size());
  KVLAB_ASSERT(k >= 2 && (k & (k - 1)) == 0);
  int bits = 0;
  while ((1 << bits) < k) ++bits;
  BitCount b;
  if (n == 0 || d == 0) return b;
  const auto p = vector_params(x, axis, ex);
  std::vector<float> mid(k - 1);
  for (int j = 0; j + 1 < k; ++j) mid[j] = 0.5f * (levels[j] + levels[j + 1]);
  const bool per_token = axis == QuantAxis::PerToken;
  for (int r = 0; r < n; ++r)
    for (int c = 0; c < d; ++c) {
      if (ex && (*ex)(r, c)) {
        out(r, c) = 0.0f;
        continue;
      }
      const VecParams q = p[per_token ? r : c];
      if (q.scale == 0.0f) {
        out(r, c) = q.zero;
        continue;
      }
      const float u = (x(r, c) - q.zero) / q.scale;
      int j = 0;
      while (j < k - 1 && u > mid[j]) ++j;
      out(r, c) = q.zero + levels[j] * q.scale;
    }
  b.codes = static_cast<std::uint64_t>(bits) * static_cast<std::uint64_t>(n) * static_cast<std::uint64_t>(d);
  b.metadata = 32ULL * static_cast<std::uint64_t>(per_token ? n : d);
  return b;
}

}  // namespace kvlab
