// Attention metrics on hand-computed cases, reconstruction error, and the
// evaluation schedule.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "kvlab/attention/softmax.hpp"
#include "kvlab/core/rng.hpp"
#include "kvlab/metrics/attention.hpp"
#include "kvlab/metrics/attention_kernels.hpp"
#include "kvlab/metrics/softmax_kernels.hpp"
#include "kvlab/metrics/tensor_error.hpp"
#include "kvlab/replay/replay_options.hpp"

using namespace kvlab;

TEST_CASE("3-token attention: output error, KL and dropped mass by hand", "[metrics]") {
  // d = 1 (scale 1), q = 1, keys 0, 1, 2 → logits 0, 1, 2; values 1, 0, 1.
  const float logits[3] = {0, 1, 2};
  Matrix v(3, 1);
  v << 1, 0, 1;
  const double z = 1 + std::exp(1.0) + std::exp(2.0);
  const double p0 = 1 / z, p1 = std::exp(1.0) / z, p2 = std::exp(2.0) / z;
  const double o = p0 * 1 + p2 * 1;

  SECTION("identical cache: zero error") {
    const AttentionError e = compare_attention(logits, logits, v, v, nullptr, 1.0);
    CHECK(e.out_rel == 0.0);
    CHECK(e.kl == 0.0);
    CHECK(e.kl_rev == 0.0);
    CHECK(e.dropped_mass == 0.0);
  }
  SECTION("a perturbed key and value") {
    const float hat_logits[3] = {0, 1, 1};  // key 2 reconstructed as 1
    Matrix v_hat(3, 1);
    v_hat << 1, 0.5f, 1;
    const double zh = 1 + 2 * std::exp(1.0);
    const double q0 = 1 / zh, q1 = std::exp(1.0) / zh, q2 = std::exp(1.0) / zh;
    const double o_hat = q0 * 1 + q1 * 0.5 + q2 * 1;
    const double kl = p0 * std::log(p0 / q0) + p1 * std::log(p1 / q1) + p2 * std::log(p2 / q2);
    const AttentionError e = compare_attention(logits, hat_logits, v, v_hat, nullptr, 1.0);
    CHECK(e.out_rel == Approx(std::abs(o - o_hat) / o).epsilon(1e-12));
    CHECK(e.kl == Approx(kl).epsilon(1e-12));
    const double kl_rev = q0 * std::log(q0 / p0) + q1 * std::log(q1 / p1) + q2 * std::log(q2 / p2);
    CHECK(e.kl_rev == Approx(kl_rev).epsilon(1e-12));
    CHECK(e.dropped_mass == 0.0);
  }
  SECTION("an evicted token: dropped mass and renormalised KL") {
    const std::uint8_t present[3] = {1, 0, 1};
    Matrix v_hat = v;
    v_hat(1, 0) = 0;
    const AttentionError e = compare_attention(logits, logits, v, v_hat, present, 1.0);
    CHECK(e.dropped_mass == Approx(p1).epsilon(1e-12));
    CHECK(e.kl == Approx(0.0).margin(1e-15));  // kept distribution unchanged
    // The reverse KL sees the dropped mass: KL(p̂ ‖ p) = −log(kept mass).
    CHECK(e.kl_rev == Approx(-std::log(p0 + p2)).epsilon(1e-12));
    CHECK(e.kl_rev == Approx(-std::log(1 - e.dropped_mass)).epsilon(1e-12));
    const double o_hat = (p0 + p2) / (p0 + p2);  // both kept values are 1
    CHECK(e.out_rel == Approx(std::abs(o - o_hat) / o).epsilon(1e-12));
  }
}

TEST_CASE("softmax applies the 1/sqrt(d) scale and the present mask", "[metrics]") {
  const float logits[2] = {0, 2};
  std::vector<double> p;
  softmax(logits, 2, 0.5, nullptr, p);
  CHECK(p[1] == Approx(std::exp(1.0) / (1 + std::exp(1.0))));
  const std::uint8_t present[2] = {0, 1};
  softmax(logits, 2, 0.5, present, p);
  CHECK(p[0] == 0.0);
  CHECK(p[1] == 1.0);
}

TEST_CASE("tensor error: relative Frobenius and max abs", "[metrics]") {
  Matrix x(2, 2), y(2, 2);
  x << 3, 0, 0, 4;
  y << 3, 0, 0, 1;
  const TensorError e = tensor_error(x, y);
  CHECK(e.sq_err == 9.0);
  CHECK(e.sq_norm == 25.0);
  CHECK(e.rel() == Approx(0.6));
  CHECK(e.max_abs == 3.0);
}

TEST_CASE("evaluation steps: after prefill, every k-th, and the last", "[replay]") {
  CHECK(evaluation_steps(10, 4) == std::vector<int>{0, 4, 8, 10});
  CHECK(evaluation_steps(8, 4) == std::vector<int>{0, 4, 8});
  CHECK(evaluation_steps(5, 0) == std::vector<int>{0, 5});
  CHECK(evaluation_steps(0, 1) == std::vector<int>{0});
}

namespace {
// The definitions with a log per position (what compare_attention computed
// before its log-sum-exp form).
AttentionError plain_attention(const std::vector<float>& z, const std::vector<float>& z_hat, const Matrix& v,
                               const Matrix& v_hat, const std::uint8_t* present, double scale) {
  const int n = static_cast<int>(z.size());
  std::vector<double> p, q;
  softmax(z.data(), n, scale, nullptr, p);
  softmax(z_hat.data(), n, scale, present, q);
  AttentionError e;
  double kept = 0;
  for (int i = 0; i < n; ++i) (present && !present[i] ? e.dropped_mass : kept) += p[i];
  for (int i = 0; i < n; ++i)
    if (!(present && !present[i])) e.kl += p[i] / kept * std::log(p[i] / kept / q[i]);
  for (int i = 0; i < n; ++i)
    if (q[i] > 0) e.kl_rev += q[i] * std::log(q[i] / p[i]);
  double diff = 0, norm = 0;
  for (int c = 0; c < v.cols(); ++c) {
    double o = 0, oh = 0;
    for (int i = 0; i < n; ++i) {
      o += p[i] * v(i, c);
      oh += q[i] * v_hat(i, c);
    }
    diff += (o - oh) * (o - oh);
    norm += o * o;
  }
  e.out_rel = std::sqrt(diff / norm);
  return e;
}
}  // namespace

TEST_CASE("attention metrics agree with the log-per-position definitions to 1e-12", "[metrics]") {
  Rng rng(21);
  const int n = 300, d = 16;
  std::vector<float> z(n), z_hat(n);
  for (int i = 0; i < n; ++i) {
    z[i] = static_cast<float>(3 * rng.normal());
    z_hat[i] = z[i] + static_cast<float>(0.2 * rng.normal());
  }
  Matrix v(n, d), v_hat(n, d);
  for (int i = 0; i < n; ++i)
    for (int c = 0; c < d; ++c) {
      v(i, c) = static_cast<float>(rng.normal());
      v_hat(i, c) = v(i, c) + static_cast<float>(0.1 * rng.normal());
    }
  std::vector<std::uint8_t> present(n, 1);
  for (int i = 0; i < n; i += 3) present[i] = 0;
  const std::uint8_t* const masks[] = {nullptr, present.data()};
  for (const std::uint8_t* mask : masks) {
    Matrix vh = v_hat;
    if (mask)
      for (int i = 0; i < n; ++i)
        if (!mask[i]) vh.row(i).setZero();
    const AttentionError want = plain_attention(z, z_hat, v, vh, mask, 0.25);
    const AttentionError got = compare_attention(z.data(), z_hat.data(), v, vh, mask, 0.25);
    CHECK(got.kl == Approx(want.kl).epsilon(1e-12));
    CHECK(got.kl_rev == Approx(want.kl_rev).epsilon(1e-12));
    CHECK(got.dropped_mass == Approx(want.dropped_mass).epsilon(1e-14));
    CHECK(got.out_rel == Approx(want.out_rel).epsilon(1e-12));
    // One reference compared with two caches, buffers reused: the same numbers.
    std::vector<double> p(n), o(d);
    ReferenceAttention ref;
    ref.tokens = n;
    ref.logits = z.data();
    ref.p = p.data();
    ref.norm = softmax_into(z.data(), n, 0.25, nullptr, p.data());
    weighted_row_sum(p.data(), v, o.data());
    ref.o = o.data();
    for (double x : o) ref.o_norm2 += x * x;
    AttentionScratch scratch;
    compare_attention(ref, z.data(), v, nullptr, 0.25, scratch);
    const AttentionError again = compare_attention(ref, z_hat.data(), vh, mask, 0.25, scratch);
    CHECK(again.kl == got.kl);
    CHECK(again.kl_rev == got.kl_rev);
    CHECK(again.out_rel == got.out_rel);
  }
}

TEST_CASE("a probability that underflows to 0 keeps the KLs finite", "[metrics]") {
  // exp(-800) underflows in double: p̂ of position 1 is 0, but log p̂ is -800.
  const float z[2] = {0, 0}, z_hat[2] = {0, -800};
  Matrix v(2, 1);
  v << 1, 2;
  const AttentionError e = compare_attention(z, z_hat, v, v, nullptr, 1.0);
  CHECK(std::isfinite(e.kl));
  CHECK(e.kl == Approx(0.5 * 800 - std::log(2.0)).epsilon(1e-12));  // ½·log(½/1) + ½·log(½/e^-800)
  CHECK(e.kl_rev == Approx(std::log(2.0)).epsilon(1e-12));
}

TEST_CASE("the lane-wise exp is within 2 ulp of std::exp and exact at 0", "[metrics]") {
  CHECK(exp_nonpositive(0.0) == 1.0);
  CHECK(exp_nonpositive(-746.0) == 0.0);
  CHECK(exp_nonpositive(-1e6) == 0.0);
  Rng rng(4);
  for (int i = 0; i < 200000; ++i) {
    const double x = i < 1000 ? -i * 0.7453 : -std::abs(rng.normal()) * (i % 3 == 0 ? 300.0 : 8.0);
    const double want = std::exp(x), got = exp_nonpositive(x);
    INFO("x = " << x);
    if (want < 2.2250738585072014e-308) {  // subnormal: a rounding of the scaled result
      REQUIRE(std::abs(got - want) <= 2 * 4.9406564584124654e-324);
      continue;
    }
    REQUIRE(std::abs(got - want) <= 4.5e-16 * want);  // 2 ulp
  }
}

TEST_CASE("softmax_into agrees with softmax() to 1e-15 and sums present positions only", "[metrics]") {
  Rng rng(6);
  for (const int n : {1, 5, 8, 13, 64, 301}) {
    std::vector<float> z(static_cast<std::size_t>(n));
    for (float& x : z) x = static_cast<float>(5 * rng.normal());
    std::vector<std::uint8_t> present(static_cast<std::size_t>(n), 1);
    for (int i = 1; i < n; i += 3) present[static_cast<std::size_t>(i)] = 0;
    for (const std::uint8_t* mask : {static_cast<const std::uint8_t*>(nullptr),
                                     static_cast<const std::uint8_t*>(present.data())}) {
      std::vector<double> want, got(static_cast<std::size_t>(n), -1.0);
      softmax(z.data(), n, 0.125, mask, want);
      const SoftmaxNorm norm = softmax_into(z.data(), n, 0.125, mask, got.data());
      double sum = 0;
      for (int i = 0; i < n; ++i) {
        CHECK(got[i] == Approx(want[i]).epsilon(1e-15).margin(1e-300));
        if (mask && !mask[i]) CHECK(got[i] == 0.0);
        sum += got[i];
      }
      CHECK(sum == Approx(1.0).epsilon(1e-14));
      CHECK(std::isfinite(norm.log_sum));
    }
  }
  std::vector<std::uint8_t> none(3, 0);
  std::vector<double> p(3, 1.0);
  const float z[3] = {1, 2, 3};
  CHECK(std::isinf(softmax_into(z, 3, 1.0, none.data(), p.data()).log_sum));
  CHECK((p[0] == 0.0 && p[1] == 0.0 && p[2] == 0.0));
}
