#include "kvlab/attention/softmax.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace kvlab {

void softmax(const float* logits, int n, double scale, const std::uint8_t* present, std::vector<double>& p) {
  p.assign(static_cast<std::size_t>(n), 0.0);
  double mx = -std::numeric_limits<double>::infinity();
  for (int i = 0; i < n; ++i)
    if (present == nullptr || present[i]) mx = std::max(mx, scale * logits[i]);
  if (!std::isfinite(mx)) return;  // nothing present
  double sum = 0.0;
  for (int i = 0; i < n; ++i) {
    if (present != nullptr && !present[i]) continue;
    p[i] = std::exp(scale * logits[i] - mx);
    sum += p[i];
  }
  for (int i = 0; i < n; ++i) p[i] /= sum;
}

}  // namespace kvlab
