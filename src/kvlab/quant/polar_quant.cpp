#include "kvlab/quant/polar_quant.hpp"

#include <cmath>
#include <map>
#include <mutex>
#include <numbers>

#include "kvlab/core/error.hpp"
#include "kvlab/core/fp16.hpp"
#include "kvlab/quant/lloyd_max.hpp"

namespace kvlab {

double polar_angle_range(int level) { return level == 1 ? 2.0 * std::numbers::pi : std::numbers::pi / 2.0; }

const std::vector<float>& polar_offline_codebook(int level, int bits) {
  KVLAB_ASSERT(level >= 1 && level <= 30 && bits >= 1 && bits <= 8);
  static std::mutex mutex;
  static std::map<std::pair<int, int>, std::vector<float>> cache;  // node-based: references stay valid
  const std::lock_guard<std::mutex> lock(mutex);
  auto it = cache.find({level, bits});
  if (it != cache.end()) return it->second;
  const int k = 1 << bits;
  std::vector<float> c(static_cast<std::size_t>(k));
  if (level == 1) {
    for (int j = 0; j < k; ++j) c[j] = static_cast<float>((j + 0.5) * polar_angle_range(1) / k);
  } else {
    const double power = std::ldexp(1.0, level - 1) - 1.0;
    const auto density = [power](double psi) { return std::pow(std::sin(2.0 * psi), power); };
    const std::vector<double> l = lloyd_max(density, 0.0, polar_angle_range(level), k);
    for (int j = 0; j < k; ++j) c[j] = static_cast<float>(l[j]);
  }
  return cache.emplace(std::make_pair(level, bits), std::move(c)).first->second;
}

PolarCoords polar_transform(ConstMatrixRef y, int levels) {
  const int n = static_cast<int>(y.rows()), d = static_cast<int>(y.cols());
  KVLAB_ASSERT(levels >= 1 && d % (1 << levels) == 0);
  PolarCoords c;
  Matrix r = y;
  for (int level = 1; level <= levels; ++level) {
    const int m = static_cast<int>(r.cols()) / 2;
    Matrix psi(n, m), next(n, m);
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < m; ++j) {
        const double a = r(i, 2 * j), b = r(i, 2 * j + 1);
        double angle = std::atan2(b, a);
        if (angle < 0) angle += 2.0 * std::numbers::pi;  // level ≥ 2 radii are ≥ 0: already in [0, π/2]
        psi(i, j) = static_cast<float>(angle);
        next(i, j) = static_cast<float>(std::hypot(a, b));
      }
    c.angles.push_back(std::move(psi));
    r = std::move(next);
  }
  c.radii = std::move(r);
  return c;
}

Matrix polar_inverse(const PolarCoords& c) {
  Matrix r = c.radii;
  for (int level = static_cast<int>(c.angles.size()); level >= 1; --level) {
    const Matrix& psi = c.angles[static_cast<std::size_t>(level - 1)];
    const int n = static_cast<int>(psi.rows()), m = static_cast<int>(psi.cols());
    Matrix prev(n, 2 * m);
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < m; ++j) {
        const double rad = r(i, j), a = psi(i, j);
        prev(i, 2 * j) = static_cast<float>(rad * std::cos(a));
        prev(i, 2 * j + 1) = static_cast<float>(rad * std::sin(a));
      }
    r = std::move(prev);
  }
  return r;
}

int nearest_circular(const std::vector<float>& sorted, float x, float period) {
  const int k = static_cast<int>(sorted.size());
  int best = nearest_centroid(sorted, x);
  float dist = std::abs(x - sorted[best]);
  // Across the wrap: the first level seen from above, the last seen from below.
  const float up = sorted[0] + period - x, down = x - (sorted[k - 1] - period);
  if (up < dist) {
    best = 0;
    dist = up;
  }
  if (down < dist) best = k - 1;
  return best;
}

PolarQuantizer::PolarQuantizer(PolarConfig cfg, Rotation rotation, std::vector<std::vector<float>> codebooks)
    : cfg_(cfg), rotation_(std::move(rotation)), codebooks_(std::move(codebooks)) {
  KVLAB_ASSERT(static_cast<int>(codebooks_.size()) == cfg_.levels);
  for (int l = 1; l <= cfg_.levels; ++l)
    KVLAB_ASSERT(static_cast<int>(codebooks_[l - 1].size()) == 1 << cfg_.bits_at(l));
}

void PolarQuantizer::quantize(ConstMatrixRef x, MatrixRef out) const {
  Matrix y = x;
  rotation_.apply(y);
  PolarCoords c = polar_transform(y, cfg_.levels);
  const float period = static_cast<float>(polar_angle_range(1));
  for (int l = 1; l <= cfg_.levels; ++l) {
    Matrix& psi = c.angles[static_cast<std::size_t>(l - 1)];
    const std::vector<float>& book = codebooks_[static_cast<std::size_t>(l - 1)];
    for (int i = 0; i < psi.rows(); ++i)
      for (int j = 0; j < psi.cols(); ++j)
        psi(i, j) = book[l == 1 ? nearest_circular(book, psi(i, j), period) : nearest_centroid(book, psi(i, j))];
  }
  for (int i = 0; i < c.radii.rows(); ++i)
    for (int j = 0; j < c.radii.cols(); ++j) c.radii(i, j) = round_to_fp16(c.radii(i, j));
  out = polar_inverse(c);
  rotation_.invert(out);
}

BitCount PolarQuantizer::vector_bits(int d, const PolarConfig& cfg) {
  BitCount b;
  for (int l = 1; l <= cfg.levels; ++l)
    b.codes += static_cast<std::uint64_t>(d >> l) * static_cast<std::uint64_t>(cfg.bits_at(l));
  b.metadata = 16ULL * static_cast<std::uint64_t>(d >> cfg.levels);
  return b;
}

}  // namespace kvlab
