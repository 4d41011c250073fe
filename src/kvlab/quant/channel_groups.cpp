#include "kvlab/quant/channel_groups.hpp"

#include <algorithm>
#include <numeric>

#include "kvlab/core/error.hpp"

namespace kvlab {

ChannelGroups contiguous_groups(int d, int group) {
  KVLAB_ASSERT(d >= 1 && group >= 1);
  ChannelGroups out;
  for (int c0 = 0; c0 < d; c0 += group) {
    out.emplace_back();
    for (int c = c0; c < std::min(d, c0 + group); ++c) out.back().push_back(c);
  }
  return out;
}

ChannelGroups cluster_channels(const std::vector<float>& mn, const std::vector<float>& mx, int clusters) {
  const int d = static_cast<int>(mn.size());
  KVLAB_ASSERT(static_cast<int>(mx.size()) == d && clusters >= 1 && clusters <= d);
  std::vector<int> order(static_cast<std::size_t>(d));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return double(mx[a]) - mn[a] < double(mx[b]) - mn[b]; });
  std::vector<double> cx(static_cast<std::size_t>(clusters)), cy(static_cast<std::size_t>(clusters));
  for (int j = 0; j < clusters; ++j) {
    const int c = order[static_cast<std::size_t>((j + 0.5) * d / clusters)];
    cx[j] = mn[c];
    cy[j] = mx[c];
  }
  std::vector<int> label(static_cast<std::size_t>(d), -1);
  for (int it = 0; it < 100; ++it) {
    bool changed = false;
    for (int c = 0; c < d; ++c) {
      int best = 0;
      double best_d = 0;
      for (int j = 0; j < clusters; ++j) {
        const double dx = mn[c] - cx[j], dy = mx[c] - cy[j], dist = dx * dx + dy * dy;
        if (j == 0 || dist < best_d) {
          best = j;
          best_d = dist;
        }
      }
      changed |= label[c] != best;
      label[c] = best;
    }
    if (!changed) break;
    std::vector<double> sx(static_cast<std::size_t>(clusters), 0.0), sy = sx, n = sx;
    for (int c = 0; c < d; ++c) {
      sx[label[c]] += mn[c];
      sy[label[c]] += mx[c];
      n[label[c]] += 1.0;
    }
    for (int j = 0; j < clusters; ++j)
      if (n[j] > 0) {
        cx[j] = sx[j] / n[j];
        cy[j] = sy[j] / n[j];
      }
  }
  ChannelGroups out(static_cast<std::size_t>(clusters));
  for (int c = 0; c < d; ++c) out[label[c]].push_back(c);
  std::erase_if(out, [](const std::vector<int>& g) { return g.empty(); });
  return out;
}

}  // namespace kvlab
