#include "kvlab/quant/lloyd_max.hpp"

#include <algorithm>
#include <cmath>

#include "kvlab/core/error.hpp"

namespace kvlab {

std::vector<double> lloyd_max(const std::function<double(double)>& density, double lo, double hi, int levels,
                              int grid, int max_iterations) {
  KVLAB_ASSERT(levels >= 1 && grid >= levels && hi > lo);
  const double step = (hi - lo) / grid;
  // w[i] and w·x prefix sums over cells; cell i has midpoint lo + (i + 0.5)·step.
  std::vector<double> cw(static_cast<std::size_t>(grid) + 1, 0.0), cx(static_cast<std::size_t>(grid) + 1, 0.0);
  for (int i = 0; i < grid; ++i) {
    const double x = lo + (i + 0.5) * step;
    const double w = density(x);
    KVLAB_ASSERT(std::isfinite(w) && w >= 0.0);
    cw[i + 1] = cw[i] + w;
    cx[i + 1] = cx[i] + w * x;
  }
  const double total = cw[grid];
  KVLAB_ASSERT(total > 0.0);
  // First cell whose midpoint is ≥ b.
  auto cell_at = [&](double b) {
    const double f = std::ceil((b - lo) / step - 0.5);
    return static_cast<int>(std::clamp(f, 0.0, static_cast<double>(grid)));
  };
  std::vector<double> c(static_cast<std::size_t>(levels));
  for (int j = 0; j < levels; ++j) {
    const double target = (j + 0.5) / levels * total;
    const auto it = std::lower_bound(cw.begin() + 1, cw.end(), target);
    const int cell = static_cast<int>(it - cw.begin()) - 1;
    c[j] = lo + (cell + 0.5) * step;
  }
  for (int it = 0; it < max_iterations; ++it) {
    double moved = 0.0;
    int start = 0;
    for (int j = 0; j < levels; ++j) {
      const int end = j + 1 < levels ? cell_at(0.5 * (c[j] + c[j + 1])) : grid;
      const double w = cw[end] - cw[start];
      if (w > 0.0) {
        const double nc = (cx[end] - cx[start]) / w;
        moved = std::max(moved, std::abs(nc - c[j]));
        c[j] = nc;
      }
      start = std::max(start, end);
    }
    std::sort(c.begin(), c.end());
    if (moved <= 1e-13 * (hi - lo)) break;
  }
  return c;
}

int nearest_centroid(const std::vector<float>& centroids, float x) {
  const int k = static_cast<int>(centroids.size());
  KVLAB_ASSERT(k >= 1);
  // First centroid ≥ x; the answer is it or its left neighbour.
  const int hi = static_cast<int>(std::lower_bound(centroids.begin(), centroids.end(), x) - centroids.begin());
  if (hi == 0) return 0;
  if (hi == k) return k - 1;
  return (x - centroids[hi - 1] <= centroids[hi] - x) ? hi - 1 : hi;
}

}  // namespace kvlab
