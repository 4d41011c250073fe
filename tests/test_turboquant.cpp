// TurboQuant: codebooks against closed forms, the method against a plain
// reference (explicit matrices, linear nearest-centroid search, double), the
// inner-product estimator's unbiasedness over seeds, and exact bits.
#include <catch2/catch.hpp>

#include <cmath>
#include <numbers>

#include "kvlab/compressors/registry.hpp"
#include "kvlab/core/fp16.hpp"
#include "kvlab/quant/lloyd_max.hpp"
#include "kvlab/quant/turbo_quant.hpp"
#include "test_support.hpp"

using namespace kvlab;
using test::random_matrix;

namespace {

constexpr std::uint64_t kTurboQjl = 0x5455524251A1ULL;  // turboquant.cpp's purpose tag

// Plain reference of TurboQuant_mse for one vector: explicit R, linear search.
Eigen::VectorXd ref_mse(const Eigen::VectorXd& x, const MatrixD& r, int bits) {
  const int d = static_cast<int>(x.size());
  if (bits == 0) return Eigen::VectorXd::Zero(d);
  const std::vector<float>& c = sphere_coordinate_codebook(d, bits);
  const double norm = x.norm();
  if (norm == 0) return Eigen::VectorXd::Zero(d);
  const Eigen::VectorXd y = r * (x / norm);
  Eigen::VectorXd yq(d);
  for (int j = 0; j < d; ++j) {
    std::size_t best = 0;
    for (std::size_t i = 1; i < c.size(); ++i)
      if (std::abs(y[j] - c[i]) < std::abs(y[j] - c[best])) best = i;
    yq[j] = c[best];
  }
  return double(round_to_fp16(float(norm))) * (r.transpose() * yq);
}

// TurboQuant_prod: (bits − 1)-bit mse + √(π/2)/d · γ · Sᵀ sign(S r).
Eigen::VectorXd ref_prod(const Eigen::VectorXd& x, const MatrixD& r, const MatrixD& s, int bits) {
  const int d = static_cast<int>(x.size());
  const Eigen::VectorXd m = ref_mse(x, r, bits - 1);
  const Eigen::VectorXd res = x - m;
  Eigen::VectorXd sg = s * res;
  for (int j = 0; j < d; ++j) sg[j] = sg[j] >= 0 ? 1.0 : -1.0;
  const double gamma = round_to_fp16(float(res.norm()));
  return m + std::sqrt(std::numbers::pi / 2) / d * gamma * (s.transpose() * sg);
}

std::uint64_t turbo_bits(int t, int d, int b, bool qjl) {
  const std::uint64_t values = std::uint64_t(t) * (b * d + 16);
  const std::uint64_t keys = qjl ? std::uint64_t(t) * (b * d + 16 + (b > 1 ? 16 : 0)) : values;
  return keys + values;
}

}  // namespace

TEST_CASE("lloyd-max: uniform density gives uniform cells", "[turboquant]") {
  const auto c = lloyd_max([](double) { return 1.0; }, 0.0, 1.0, 4);
  REQUIRE(c.size() == 4);
  for (int j = 0; j < 4; ++j) CHECK(c[j] == Approx((j + 0.5) / 4).margin(1e-5));  // within a grid cell (2^-18)
  const std::vector<float> f{-1.0f, 0.0f, 2.0f};
  CHECK(nearest_centroid(f, -5.0f) == 0);
  CHECK(nearest_centroid(f, -0.5f) == 0);  // a tie goes to the lower
  CHECK(nearest_centroid(f, 0.9f) == 1);
  CHECK(nearest_centroid(f, 9.0f) == 2);
}

TEST_CASE("turboquant codebooks: closed forms", "[turboquant]") {
  // d = 3: one coordinate of a uniform point on S² is uniform on [−1, 1].
  for (int bits : {1, 2, 3}) {
    const auto& c = sphere_coordinate_codebook(3, bits);
    const int k = 1 << bits;
    for (int j = 0; j < k; ++j) CHECK(c[j] == Approx(-1.0 + (2.0 * j + 1.0) / k).margin(1e-5));
  }
  // Large d: √d · coordinate → N(0, 1), whose Lloyd–Max levels are tabulated (Max, 1960).
  const int d = 4096;
  const double s = std::sqrt(double(d));
  const std::vector<std::vector<double>> gauss = {
      {0.7979}, {0.4528, 1.5104}, {0.2451, 0.7560, 1.3439, 2.1520}};
  for (int bits : {1, 2, 3}) {
    const auto& c = sphere_coordinate_codebook(d, bits);
    const int k = 1 << bits;
    for (int j = 0; j < k / 2; ++j) {
      CHECK(c[k / 2 + j] * s == Approx(gauss[bits - 1][j]).epsilon(2e-3));
      CHECK(c[k / 2 - 1 - j] == Approx(-c[k / 2 + j]).margin(1e-6));  // symmetric
    }
  }
  // The paper's b = 1 value: ±√(2/(π d)).
  CHECK(sphere_coordinate_codebook(d, 1)[1] == Approx(std::sqrt(2 / (std::numbers::pi * d))).epsilon(2e-3));
}

TEST_CASE("turboquant matches the plain reference and its bits closed form", "[turboquant]") {
  const int d = 32, p = 40, total = 60;
  const Matrix k = random_matrix(total, d, 21), v = random_matrix(total, d, 22, 0.5);
  for (const char* rot : {"random", "hadamard"}) {
    for (int bits : {1, 2, 4}) {
      for (bool qjl : {true, false}) {
        INFO(rot << " bits " << bits << " qjl " << qjl);
        const auto c = Registry::global().build(fmt::format("turboquant:bits={},qjl={},rotation={}", bits, qjl, rot));
        BlockContext ctx = test::block_context(d, total, p, 13);
        ctx.layer = 2;
        ctx.kv_head = 1;
        auto st = c->new_state(ctx);
        CHECK(st->keys_reconstructible());
        st->prefill(k.topRows(p), v.topRows(p), {});
        CHECK(st->bits().total() == turbo_bits(p, d, bits, qjl));
        for (int t = p; t < total; ++t) {
          st->append(k.row(t), v.row(t), {});
          REQUIRE(st->bits().total() == turbo_bits(t + 1, d, bits, qjl));
        }
        const RotationKind kind = parse_rotation_kind(rot);
        const MatrixD rk = Rotation::for_block(kind, d, 13, 2, 1, 0).matrix().cast<double>();
        const MatrixD rv = Rotation::for_block(kind, d, 13, 2, 1, 1).matrix().cast<double>();
        Rng rng = Rng::for_block(13, 2, 1, kTurboQjl);
        const MatrixD s = random_matrix(d, d, rng).cast<double>();
        const CacheView view = st->view();
        double worst = 0;
        for (int t = 0; t < total; ++t) {
          const Eigen::VectorXd kx = k.row(t).transpose().cast<double>(), vx = v.row(t).transpose().cast<double>();
          const Eigen::VectorXd kr = qjl ? ref_prod(kx, rk, s, bits) : ref_mse(kx, rk, bits);
          const Eigen::VectorXd vr = ref_mse(vx, rv, bits);
          worst = std::max(worst, (view.keys.row(t).transpose().cast<double>() - kr).cwiseAbs().maxCoeff());
          worst = std::max(worst, (view.values.row(t).transpose().cast<double>() - vr).cwiseAbs().maxCoeff());
        }
        CHECK(worst < 2e-5);
      }
    }
  }
  CHECK_THROWS_WITH(Registry::global().build("turboquant")->new_state(test::block_context(1, 4, 4)),
                    Catch::Contains("head_dim >= 2"));
}

TEST_CASE("turboquant: the key inner-product estimator is unbiased over seeds", "[turboquant]") {
  const int d = 32, trials = 3000;
  Rng rng(17);
  const Matrix k = random_matrix(1, d, rng), q = random_matrix(1, d, rng);
  const double truth = q.row(0).dot(k.row(0));
  auto mean_and_se = [&](const std::string& spec) {
    const auto c = Registry::global().build(spec);
    double sum = 0, sq = 0;
    Matrix out(1, 1);
    for (int s = 0; s < trials; ++s) {
      auto st = c->new_state(test::block_context(d, 1, 1, 5000 + s));
      st->prefill(k, k, {});
      st->key_logits(q, out);
      sum += out(0, 0);
      sq += double(out(0, 0)) * out(0, 0);
    }
    const double mean = sum / trials;
    return std::pair{mean, std::sqrt(std::max(0.0, sq / trials - mean * mean) / trials)};
  };
  // γ = fp16(‖r‖) biases E by at most 2^-11·|⟨q, r⟩| ≤ 2^-11·‖q‖·‖k‖.
  const double fp16_bias = std::ldexp(1.0, -11) * q.norm() * k.norm();
  for (int bits : {1, 2, 3}) {
    const auto [mean, se] = mean_and_se(fmt::format("turboquant:bits={}", bits));
    INFO("bits " << bits << ": mean " << mean << " truth " << truth << " se " << se);
    CHECK(std::abs(mean - truth) < 4 * se + fp16_bias);
  }
  // Without the QJL stage the 1-bit codebook shrinks inner products (≈ 2/π): biased.
  const auto [mean, se] = mean_and_se("turboquant:bits=1,qjl=false");
  INFO("mse-only: mean " << mean << " truth " << truth << " se " << se);
  CHECK(std::abs(mean - truth) > 8 * se);
  CHECK(mean / truth == Approx(2 / std::numbers::pi).epsilon(0.1));
}
