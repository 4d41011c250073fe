// QJL: unbiased score estimator, exact FP16 buffer, bits closed form.
#include <catch2/catch.hpp>
#include <cmath>
#include <numbers>

#include "kvlab/compressors/registry.hpp"
#include "kvlab/core/fp16.hpp"
#include "kvlab/core/rng.hpp"
#include "kvlab/quant/group_quantizer.hpp"
#include "test_support.hpp"

using namespace kvlab;
using test::random_matrix;

namespace {

BlockContext context(int d, int total, std::uint64_t seed = 1, int layer = 0, int head = 0) {
  BlockContext c = test::block_context(d, total, total, seed);
  c.layer = layer;
  c.kv_head = head;
  return c;
}

// Closed form (docs/methods/qjl.md): n = max(0, t − buffer) sketched tokens.
std::uint64_t qjl_bits(int t, int d, int m, int vbits, int vgroup, int buffer) {
  const std::uint64_t n = t > buffer ? t - buffer : 0;
  const std::uint64_t groups = vgroup == 0 ? 1 : (d + vgroup - 1) / vgroup;
  return n * (m + 16) + n * (vbits * d + 32 * groups) + 2ULL * 16 * d * (t - n);
}

}  // namespace

TEST_CASE("qjl score estimate is unbiased over sketches", "[qjl]") {
  const int d = 32, m = 64, trials = 3000;
  Rng rng(7);
  const Matrix k = random_matrix(1, d, rng);
  const Matrix q = random_matrix(1, d, rng);
  const auto c = Registry::global().build("qjl:sketch=64,buffer=0");
  const double norm16 = round_to_fp16(k.norm());
  const double truth = double(q.row(0).dot(k.row(0))) * norm16 / k.norm();  // ‖k‖ is stored as FP16
  double sum = 0, sq = 0;
  Matrix out(1, 1);
  for (int s = 0; s < trials; ++s) {
    auto st = c->new_state(context(d, 1, 1000 + s));
    st->prefill(k, k, QueryGroup{});
    st->key_logits(q, out);
    sum += out(0, 0);
    sq += double(out(0, 0)) * out(0, 0);
  }
  const double mean = sum / trials;
  const double sd = std::sqrt(std::max(0.0, sq / trials - mean * mean));
  const double se = sd / std::sqrt(double(trials));
  INFO("mean " << mean << " truth " << truth << " se " << se);
  CHECK(std::abs(mean - truth) < 4 * se);
  // The estimator's spread shrinks like 1/√m: sd ≈ ‖q‖‖k‖·sqrt((π/2 − ρ²)/m) at most ‖q‖‖k‖·√(π/(2m)).
  CHECK(sd <= q.norm() * k.norm() * std::sqrt(std::numbers::pi / 2 / m) * 1.1);
}

TEST_CASE("qjl with a large sketch approximates the logits closely", "[qjl]") {
  const int d = 64, t = 40;
  Rng rng(3);
  const Matrix k = random_matrix(t, d, rng), v = random_matrix(t, d, rng), q = random_matrix(3, d, rng);
  auto st = Registry::global().build("qjl:sketch=16384,buffer=0")->new_state(context(d, t));
  st->prefill(k, v, QueryGroup{});
  Matrix out(3, t);
  st->key_logits(q, out);
  const Matrix exact = q * k.transpose();
  const double rel = (out - exact).norm() / exact.norm();
  CHECK(rel < 0.1);
}

TEST_CASE("qjl: FP16 buffer exact, values per-token, view keys give the estimator, bits closed form", "[qjl]") {
  const int d = 64, p = 150, total = 200, m = 256, buffer = 128;
  Rng rng(9);
  const Matrix k = random_matrix(total, d, rng), v = random_matrix(total, d, rng), q = random_matrix(4, d, rng);
  const auto c = Registry::global().build("qjl-256");
  CHECK(c->spec() == "qjl:sketch=256,value_bits=2,value_group=32,buffer=128");
  auto st = c->new_state(context(d, total, 5, 2, 1));
  CHECK_FALSE(st->keys_reconstructible());
  CHECK_FALSE(c->needs_queries());
  st->prefill(k.topRows(p), v.topRows(p), QueryGroup{});
  for (int t = p; t <= total; ++t) {
    if (t > p) st->append(k.row(t - 1), v.row(t - 1), QueryGroup{});
    REQUIRE(st->bits().total() == qjl_bits(t, d, m, 2, 32, buffer));
  }
  const BitCount b = st->bits();
  const int n = total - buffer;
  CHECK(b.codes == std::uint64_t(n) * m + std::uint64_t(n) * 2 * d);
  CHECK(b.fp16_buffer == 2ULL * 16 * d * buffer);

  const CacheView view = st->view();
  Matrix out(4, total);
  st->key_logits(q, out);
  const Matrix via_view = q * view.keys.transpose();
  for (int i = 0; i < total; ++i)
    for (int h = 0; h < 4; ++h) REQUIRE(out(h, i) == Approx(via_view(h, i)).epsilon(1e-3).margin(1e-3));
  for (int i = n; i < total; ++i) {
    REQUIRE(view.keys.row(i) == k.row(i));  // FP16 buffer exact
    REQUIRE(view.values.row(i) == v.row(i));
    for (int h = 0; h < 4; ++h) REQUIRE(out(h, i) == Approx(q.row(h).dot(k.row(i))).epsilon(1e-5).margin(1e-5));
  }
  const QuantConfig vq{2, QuantAxis::PerToken, 32};
  for (int i = 0; i < n; i += 17) {
    Matrix x = v.row(i), o(1, d);
    fake_quantize(x, vq, o);
    REQUIRE(view.values.row(i) == o.row(0));
  }
}

TEST_CASE("qjl: one sketch matrix per block, deterministic by (seed, layer, head)", "[qjl]") {
  const int d = 16;
  Rng rng(4);
  Matrix k = random_matrix(3, d, rng);
  k.row(2) = k.row(0);  // same key twice in a block: same sketch
  const Matrix q = random_matrix(1, d, rng);
  const auto c = Registry::global().build("qjl:sketch=32,buffer=0");
  auto logits = [&](int layer, int head) {
    auto st = c->new_state(context(d, 3, 1, layer, head));
    st->prefill(k, k, QueryGroup{});
    Matrix out(1, 3);
    st->key_logits(q, out);
    return out;
  };
  const Matrix a = logits(0, 0);
  CHECK(a(0, 0) == a(0, 2));
  CHECK(logits(0, 0) == a);
  CHECK(logits(1, 0) != a);
  CHECK(logits(0, 1) != a);
}

TEST_CASE("qjl grows past the max_tokens capacity hint", "[qjl]") {
  const int d = 8;
  Rng rng(2);
  const Matrix k = random_matrix(20, d, rng), q = random_matrix(1, d, rng);
  auto st = Registry::global().build("qjl:sketch=16,buffer=2")->new_state(context(d, 3));
  test::feed(*st, k, k, 3, 20);
  Matrix out(1, 20);
  st->key_logits(q, out);
  CHECK(st->bits().total() == qjl_bits(20, d, 16, 2, 32, 2));
  CHECK(out(0, 19) == Approx(q.row(0).dot(k.row(19))).margin(1e-5));
}
