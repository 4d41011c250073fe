// Attention metrics on hand-computed cases, reconstruction error, and the
// evaluation schedule.
#include <catch2/catch.hpp>

#include <cmath>

#include "kvlab/attention/softmax.hpp"
#include "kvlab/metrics/attention.hpp"
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
