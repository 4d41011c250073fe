// PolarQuant: the polar transform and its inverse, codebooks against closed
// forms, the method against a plain reference (explicit rotation, recursion in
// double, linear search), exact bits, and clear errors.
#include <catch2/catch.hpp>

#include <cmath>
#include <numbers>

#include "kvlab/compressors/registry.hpp"
#include "kvlab/core/fp16.hpp"
#include "kvlab/quant/nonuniform.hpp"
#include "kvlab/quant/polar_quant.hpp"
#include "test_support.hpp"

using namespace kvlab;
using test::random_matrix;

namespace {

constexpr double kPi = std::numbers::pi;

int nearest_linear(const std::vector<float>& book, double a, double period) {
  int best = 0;
  double best_d = INFINITY;
  for (int i = 0; i < static_cast<int>(book.size()); ++i) {
    double dist = std::abs(a - book[i]);
    if (period > 0) dist = std::min(dist, period - dist);
    if (dist < best_d) {
      best_d = dist;
      best = i;
    }
  }
  return best;
}

// Plain reference of one vector: rotate, recursive polar form (double),
// quantized angles, FP16 last radii, unfold, unrotate.
Eigen::VectorXd ref_polar(const Eigen::VectorXd& x, const MatrixD& r, int levels,
                          const std::vector<std::vector<float>>& books) {
  const int d = static_cast<int>(x.size());
  std::vector<double> cur(d);
  const Eigen::VectorXd y = r * x;
  for (int i = 0; i < d; ++i) cur[i] = y[i];
  std::vector<std::vector<double>> angles;
  for (int l = 1; l <= levels; ++l) {
    std::vector<double> next, psi;
    for (std::size_t j = 0; j + 1 < cur.size(); j += 2) {
      double a = std::atan2(cur[j + 1], cur[j]);
      if (a < 0) a += 2 * kPi;
      const auto& book = books[l - 1];
      psi.push_back(book[nearest_linear(book, a, l == 1 ? 2 * kPi : 0)]);
      next.push_back(std::hypot(cur[j], cur[j + 1]));
    }
    angles.push_back(psi);
    cur = next;
  }
  for (double& v : cur) v = round_to_fp16(float(v));
  for (int l = levels; l >= 1; --l) {
    std::vector<double> prev;
    for (std::size_t j = 0; j < cur.size(); ++j) {
      prev.push_back(cur[j] * std::cos(angles[l - 1][j]));
      prev.push_back(cur[j] * std::sin(angles[l - 1][j]));
    }
    cur = prev;
  }
  Eigen::VectorXd out(d);
  for (int i = 0; i < d; ++i) out[i] = cur[i];
  return r.transpose() * out;
}

std::uint64_t polar_token_bits(int d, int levels, int b1, int bd) {
  std::uint64_t b = 0;
  for (int l = 1; l <= levels; ++l) b += std::uint64_t(d >> l) * (l == 1 ? b1 : bd);
  return b + 16ULL * (d >> levels);
}

}  // namespace

TEST_CASE("polar transform: exact inverse, radii are block norms, angle ranges", "[polarquant]") {
  const Matrix y = random_matrix(5, 32, 4);
  for (int levels : {1, 3, 5}) {
    const PolarCoords c = polar_transform(y, levels);
    REQUIRE(static_cast<int>(c.angles.size()) == levels);
    CHECK(c.radii.cols() == 32 >> levels);
    for (int i = 0; i < 5; ++i)
      for (int j = 0; j < c.radii.cols(); ++j)
        CHECK(c.radii(i, j) == Approx(y.row(i).segment(j << levels, 1 << levels).norm()).epsilon(1e-6));
    CHECK(c.angles[0].minCoeff() >= 0.0f);
    CHECK(c.angles[0].maxCoeff() < 2 * kPi);
    for (int l = 2; l <= levels; ++l) {
      CHECK(c.angles[l - 1].minCoeff() >= 0.0f);
      CHECK(c.angles[l - 1].maxCoeff() <= kPi / 2 + 1e-6);
    }
    CHECK((polar_inverse(c) - y).cwiseAbs().maxCoeff() < 1e-5);
  }
}

TEST_CASE("polar offline codebooks: closed forms", "[polarquant]") {
  // Level 1: uniform angle, uniform centroids.
  const auto& l1 = polar_offline_codebook(1, 2);
  for (int j = 0; j < 4; ++j) CHECK(l1[j] == Approx((j + 0.5) * kPi / 2).margin(1e-6));
  // Level 2, 1 bit: density ∝ sin 2ψ; E[ψ | ψ < π/4] = (1/4)/(1/2) = 1/2.
  const auto& l2 = polar_offline_codebook(2, 1);
  CHECK(l2[0] == Approx(0.5).margin(1e-5));
  CHECK(l2[1] == Approx(kPi / 2 - 0.5).margin(1e-5));
  // Deeper levels concentrate around π/4, symmetrically.
  const auto& l4 = polar_offline_codebook(4, 2), &l2b = polar_offline_codebook(2, 2);
  for (int j = 0; j < 4; ++j) CHECK(l4[j] + l4[3 - j] == Approx(kPi / 2).margin(1e-5));
  CHECK(l4[3] - l4[0] < l2b[3] - l2b[0]);
  CHECK(nearest_circular({0.5f, 3.0f, 6.0f}, 6.2f, float(2 * kPi)) == 2);
  CHECK(nearest_circular({0.5f, 3.0f, 5.0f}, 6.2f, float(2 * kPi)) == 0);  // across the wrap
}

TEST_CASE("polarquant matches the plain reference; bits closed form", "[polarquant]") {
  const int d = 32, p = 48, total = 64;
  const Matrix k = random_matrix(total, d, 31), v = random_matrix(total, d, 32, 0.3);
  for (const char* book : {"offline", "online"}) {
    for (auto [levels, b1, bd] : {std::tuple{4, 4, 2}, std::tuple{2, 3, 1}, std::tuple{5, 2, 1}, std::tuple{1, 4, 2}}) {
      INFO(book << " levels " << levels << " bits " << b1 << "/" << bd);
      const std::string spec = levels > 1
          ? fmt::format("polarquant:levels={},angle_bits={},deep_bits={},codebook={}", levels, b1, bd, book)
          : fmt::format("polarquant:levels=1,angle_bits={},codebook={}", b1, book);
      const auto c = Registry::global().build(spec);
      BlockContext ctx = test::block_context(d, total, p, 3);
      ctx.layer = 1;
      ctx.kv_head = 1;
      const bool online = std::string(book) == "online";
      std::vector<Matrix> keys{k, k}, values{v, v};  // head 1 is the one replayed
      ctx.calibration = c->calibrate(LayerView{keys, values, {}}, ctx);
      CHECK((ctx.calibration != nullptr) == online);
      auto st = c->new_state(ctx);
      const std::uint64_t books = online ? 2 * 16ULL * ((1 << b1) + (levels - 1) * (1 << bd)) : 0;
      test::feed(*st, k, v, p, p);
      CHECK(st->bits().total() == 2 * p * polar_token_bits(d, levels, b1, bd) + books);
      for (int t = p; t < total; ++t) {
        st->append(k.row(t), v.row(t), {});
        REQUIRE(st->bits().total() == 2 * (t + 1) * polar_token_bits(d, levels, b1, bd) + books);
      }
      for (int tensor = 0; tensor < 2; ++tensor) {
        const Matrix& x = tensor == 0 ? k : v;
        const MatrixD r = Rotation::for_block(RotationKind::Random, d, 3, 1, 1, tensor).matrix().cast<double>();
        std::vector<std::vector<float>> cb;
        for (int l = 1; l <= levels; ++l) {
          const int kk = 1 << (l == 1 ? b1 : bd);
          if (!online) {
            cb.push_back(polar_offline_codebook(l, l == 1 ? b1 : bd));
            continue;
          }
          // Online: k-means of the prompt's angles of this level, normalised by the range.
          Matrix y = x.topRows(p);
          Rotation::for_block(RotationKind::Random, d, 3, 1, 1, tensor).apply(y);  // as the kernel rotates
          const PolarCoords pc = polar_transform(y, levels);
          const double range = l == 1 ? 2 * kPi : kPi / 2;
          std::vector<float> u;
          for (Eigen::Index i = 0; i < pc.angles[l - 1].size(); ++i) u.push_back(float(pc.angles[l - 1].data()[i] / range));
          std::vector<float> levels_u = kmeans_levels(u, kk);
          for (float& a : levels_u) a = float(a * range);
          cb.push_back(levels_u);
        }
        const ConstMatrixRef got = tensor == 0 ? st->view().keys : st->view().values;
        double worst = 0;
        for (int t = 0; t < total; ++t) {
          const Eigen::VectorXd expect = ref_polar(x.row(t).transpose().cast<double>(), r, levels, cb);
          worst = std::max(worst, (got.row(t).transpose().cast<double>() - expect).cwiseAbs().maxCoeff());
        }
        INFO("tensor " << tensor);
        CHECK(worst < 1e-4);
      }
    }
  }
}

TEST_CASE("polarquant: more angle bits, less error; clear error for an incompatible head dim", "[polarquant]") {
  const int d = 64, total = 80;
  const Matrix k = random_matrix(total, d, 41);
  double prev = INFINITY;
  for (int b : {1, 2, 4, 8}) {
    auto st = Registry::global()
                  .build(fmt::format("polarquant:levels=3,angle_bits={},deep_bits={},codebook=offline", b, b))
                  ->new_state(test::block_context(d, total, total));
    test::feed(*st, k, k, total, total);
    const double err = (st->view().keys - k).norm() / k.norm();
    CHECK(err < prev);
    prev = err;
  }
  CHECK(prev < 0.01);
  CHECK_THROWS_WITH(Registry::global().build("polarquant:levels=4")->new_state(test::block_context(40, 4, 4)),
                    Catch::Contains("not divisible by 2^levels = 16"));
  CHECK_THROWS_WITH(Registry::global().resolve("polarquant:levels=1,deep_bits=3"),
                    Catch::Contains("only with levels>1"));
}
