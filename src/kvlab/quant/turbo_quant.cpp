#include "kvlab/quant/turbo_quant.hpp"

#include <cmath>
#include <map>
#include <mutex>
#include <numbers>

#include "kvlab/core/error.hpp"
#include "kvlab/core/fp16.hpp"
#include "kvlab/quant/lloyd_max.hpp"

namespace kvlab {

const std::vector<float>& sphere_coordinate_codebook(int d, int bits) {
  KVLAB_ASSERT(d >= 2 && bits >= 1 && bits <= 8);
  static std::mutex mutex;
  static std::map<std::pair<int, int>, std::vector<float>> cache;  // node-based: references stay valid
  const std::lock_guard<std::mutex> lock(mutex);
  auto it = cache.find({d, bits});
  if (it != cache.end()) return it->second;
  const double power = (d - 3) / 2.0;
  const auto density = [power](double t) { return std::exp(power * std::log1p(-t * t)); };
  const std::vector<double> c = lloyd_max(density, -1.0, 1.0, 1 << bits);
  std::vector<float> out(c.begin(), c.end());
  return cache.emplace(std::make_pair(d, bits), std::move(out)).first->second;
}

Matrix qjl_gaussian(int d, Rng& rng) {
  Matrix s(d, d);
  for (int i = 0; i < d; ++i)
    for (int j = 0; j < d; ++j) s(i, j) = static_cast<float>(rng.normal());
  return s;
}

TurboMse::TurboMse(int bits, Rotation rotation) : bits_(bits), rotation_(std::move(rotation)) {
  KVLAB_ASSERT(bits >= 0 && bits <= 8);
  if (bits > 0) codebook_ = &sphere_coordinate_codebook(rotation_.dim(), bits);
}

void TurboMse::quantize(ConstMatrixRef x, MatrixRef out) const {
  const int n = static_cast<int>(x.rows()), d = static_cast<int>(x.cols());
  if (bits_ == 0) {
    out.setZero();
    return;
  }
  KVLAB_ASSERT(d == rotation_.dim());
  std::vector<float> norm16(static_cast<std::size_t>(n));
  Matrix y(n, d);
  for (int i = 0; i < n; ++i) {
    const double norm = x.row(i).cast<double>().norm();
    norm16[i] = round_to_fp16(static_cast<float>(norm));
    if (norm > 0.0)
      y.row(i) = (x.row(i).cast<double>() / norm).cast<float>();
    else
      y.row(i).setZero();
  }
  rotation_.apply(y);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < d; ++j) y(i, j) = (*codebook_)[nearest_centroid(*codebook_, y(i, j))];
  rotation_.invert(y);
  for (int i = 0; i < n; ++i) out.row(i) = norm16[i] * y.row(i);
}

BitCount TurboMse::vector_bits(int d, int bits) {
  BitCount b;
  b.codes = static_cast<std::uint64_t>(bits) * static_cast<std::uint64_t>(d);
  b.metadata = bits > 0 ? 16 : 0;
  return b;
}

TurboProd::TurboProd(int bits, Rotation rotation, Matrix sketch) : mse_(bits - 1, std::move(rotation)), s_(std::move(sketch)) {
  KVLAB_ASSERT(bits >= 1 && s_.rows() == s_.cols());
}

void TurboProd::quantize(ConstMatrixRef x, MatrixRef out) const {
  const int n = static_cast<int>(x.rows()), d = static_cast<int>(x.cols());
  KVLAB_ASSERT(d == s_.cols());
  mse_.quantize(x, out);
  const Matrix r = x - out;
  const Matrix sr = r * s_.transpose();  // row i: S·r_i
  Matrix signs(n, d);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < d; ++j) signs(i, j) = sr(i, j) >= 0.0f ? 1.0f : -1.0f;
  const Matrix back = signs * s_;  // row i: Sᵀ·sign(S·r_i)
  const double c = std::sqrt(std::numbers::pi / 2.0) / d;
  for (int i = 0; i < n; ++i) {
    const float gamma = round_to_fp16(static_cast<float>(r.row(i).cast<double>().norm()));
    out.row(i) += static_cast<float>(c * gamma) * back.row(i);
  }
}

BitCount TurboProd::vector_bits(int d, int bits) {
  BitCount b = TurboMse::vector_bits(d, bits - 1);
  b.codes += static_cast<std::uint64_t>(d);
  b.metadata += 16;
  return b;
}

}  // namespace kvlab
