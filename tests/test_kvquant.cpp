#include <catch2/catch.hpp>
#include <cmath>

#include "kvlab/compressors/registry.hpp"
#include "kvlab/core/rng.hpp"
#include "kvlab/quant/nonuniform.hpp"
#include "kvlab/quant/rope_transform.hpp"

using namespace kvlab;

namespace {
Matrix gaussian(int n, int d, std::uint64_t seed) {
  Rng rng(seed);
  Matrix x(n, d);
  for (int i = 0; i < x.size(); ++i) x.data()[i] = static_cast<float>(rng.normal());
  return x;
}
BlockContext context(int d, int tokens, RopeStyle style) {
  BlockContext c;
  c.head_dim = d;
  c.max_tokens = tokens;
  c.prompt_len = tokens;
  c.num_kv_heads = 1;
  c.rope = RopeInfo{10000.0, style};
  return c;
}
}  // namespace

TEST_CASE("kvquant: RoPE undo/redo is exact for both styles", "[kvquant]") {
  for (auto style : {RopeStyle::Neox, RopeStyle::Gptj}) {
    const Matrix x = gaussian(300, 64, 1);
    Matrix y = x;
    rope_rotate(y, RopeInfo{10000.0, style}, 17, false);
    CHECK((y - x).norm() > 1.0);  // it did rotate
    rope_rotate(y, RopeInfo{10000.0, style}, 17, true);
    CHECK((y - x).cwiseAbs().maxCoeff() < 1e-5);
  }
  // Pair layout: position 1, a unit vector on channel 0 rotates into its partner.
  Matrix e = Matrix::Zero(2, 8);
  e(1, 0) = 1.0f;
  Matrix neox = e, gptj = e;
  rope_rotate(neox, RopeInfo{10000.0, RopeStyle::Neox}, 0, false);
  rope_rotate(gptj, RopeInfo{10000.0, RopeStyle::Gptj}, 0, false);
  CHECK(neox(1, 4) == Approx(std::sin(1.0)));
  CHECK(gptj(1, 1) == Approx(std::sin(1.0)));
  CHECK(neox(1, 0) == Approx(std::cos(1.0)));
}

TEST_CASE("kvquant: k-means levels on two clusters", "[kvquant]") {
  std::vector<float> v;
  Rng rng(2);
  for (int i = 0; i < 5000; ++i) v.push_back(static_cast<float>(0.2 + 0.01 * rng.normal()));
  for (int i = 0; i < 5000; ++i) v.push_back(static_cast<float>(0.8 + 0.01 * rng.normal()));
  const auto l = kmeans_levels(v, 2);
  REQUIRE(l.size() == 2);
  CHECK(l[0] == Approx(0.2).margin(2e-3));
  CHECK(l[1] == Approx(0.8).margin(2e-3));
  const auto u = uniform_levels(4);
  CHECK(u[0] == 0.0f);
  CHECK(u[3] == 1.0f);
}

TEST_CASE("kvquant: closed-form bits and error decreasing with bits", "[kvquant]") {
  const int T = 256, d = 64;
  const Matrix K = gaussian(T, d, 3), V = gaussian(T, d, 4);
  std::vector<Matrix> ks{K}, vs{V};
  double prev_k = 1e9, prev_v = 1e9;
  for (int b : {2, 3, 4}) {
    auto comp = Registry::global().build("kvquant:bits=" + std::to_string(b) + ",outliers=0.02,fp16_tokens=1");
    BlockContext ctx = context(d, T, RopeStyle::Neox);
    ctx.calibration = comp->calibrate(LayerView{ks, vs, {}}, ctx);
    REQUIRE(ctx.calibration != nullptr);
    auto st = comp->new_state(ctx);
    st->prefill(K, V, {});
    const CacheView v = st->view();
    CHECK(v.keys.row(0) == K.row(0));  // attention sink kept exactly
    const double ek = (v.keys - K).norm() / K.norm(), ev = (v.values - V).norm() / V.norm();
    CHECK(ek < prev_k);
    CHECK(ev < prev_v);
    prev_k = ek;
    prev_v = ev;
    // Keys: 255 rows, per-channel vectors of 255: k = ⌊0.02·255/2⌋ = 2 per side.
    // Values: per-token vectors of 64: k = ⌊0.64⌋ = 0.
    const std::uint64_t levels = 1ULL << b;
    const std::uint64_t keys = 16ULL * d + b * 255ULL * d + 32ULL * d + 48ULL * 4 * d + 16 * levels;
    const std::uint64_t values = 16ULL * d + b * 255ULL * d + 32ULL * 255 + 16 * levels;
    CHECK(st->bits().total() == keys + values);
  }
}

TEST_CASE("kvquant: needs RoPE metadata", "[kvquant]") {
  auto comp = Registry::global().build("kvquant-nuq3-1pct");
  CHECK(comp->needs_rope());
  BlockContext ctx = context(64, 16, RopeStyle::Neox);
  ctx.rope.reset();
  CHECK_THROWS_WITH(comp->new_state(ctx), Catch::Contains("RoPE"));
  CHECK_NOTHROW(Registry::global().build("kvquant-nuq4-1pct"));
}
