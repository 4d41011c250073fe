// Rotations (quant/rotation.hpp): FWHT against the explicit Hadamard matrix,
// orthogonality and exact inverse, the Hadamard rotation against a plain
// reference, rotation as a parameter of uniform/kivi/kcvt (element for element
// against rotate → quantize → unrotate, bits unchanged), and the reason it
// exists: lower per-token key error with outlier channels.
#include <catch2/catch.hpp>

#include <cmath>

#include "kvlab/compressors/registry.hpp"
#include "kvlab/io/synth.hpp"
#include "kvlab/quant/group_quantizer.hpp"
#include "kvlab/quant/rotation.hpp"
#include "test_support.hpp"

using namespace kvlab;
using test::random_matrix;

namespace {

// Sylvester's construction: H_1 = [1], H_2n = [[H, H], [H, −H]].
MatrixD sylvester(int n) {
  MatrixD h = MatrixD::Ones(1, 1);
  while (h.rows() < n) {
    const auto m = h.rows();
    MatrixD next(2 * m, 2 * m);
    next << h, h, h, -h;
    h = next;
  }
  return h;
}

// The documented Hadamard rotation, built explicitly: signs from the top bit of
// successive next_u64() of the block's Rng, block-diagonal H_b/√b.
MatrixD reference_hadamard(int d, std::uint64_t seed, int layer, int head, int tensor) {
  Rng rng = Rng::for_block(seed, layer, head, rotation_purpose(tensor));
  MatrixD signs = MatrixD::Zero(d, d);
  for (int i = 0; i < d; ++i) signs(i, i) = (rng.next_u64() >> 63) ? -1.0 : 1.0;
  MatrixD h = MatrixD::Zero(d, d);
  int start = 0;
  for (int b = 1 << 20; b >= 1; b /= 2)
    if (d & b) {
      h.block(start, start, b, b) = sylvester(b) / std::sqrt(double(b));
      start += b;
    }
  return h * signs;
}

double max_abs(const MatrixD& m) { return m.cwiseAbs().maxCoeff(); }

}  // namespace

TEST_CASE("rotation: power-of-two blocks are the binary digits of d", "[rotation]") {
  CHECK(hadamard_blocks(128) == std::vector<int>{128});
  CHECK(hadamard_blocks(96) == std::vector<int>{64, 32});
  CHECK(hadamard_blocks(7) == std::vector<int>{4, 2, 1});
  CHECK(parse_rotation_kind("hadamard") == RotationKind::Hadamard);
  CHECK_THROWS_WITH(parse_rotation_kind("hadamart"), Catch::Contains("none, hadamard or random"));
}

TEST_CASE("rotation: FWHT equals the explicit Hadamard matrix product", "[rotation]") {
  for (int n : {1, 2, 4, 8, 64, 256}) {
    INFO("n = " << n);
    Rng rng(n);
    const Matrix x = random_matrix(1, n, rng);
    Matrix y = x;
    fwht(y.data(), n);
    const MatrixD expected = sylvester(n) * x.cast<double>().transpose();
    CHECK(max_abs(y.cast<double>().transpose() - expected) < 1e-5 * std::sqrt(double(n)));
  }
}

TEST_CASE("rotation: orthogonal, exact inverse, apply = x·Rᵀ", "[rotation]") {
  for (const RotationKind kind : {RotationKind::Hadamard, RotationKind::Random, RotationKind::None}) {
    for (int d : {64, 96, 7, 2}) {
      INFO(to_string(kind) << " d = " << d);
      const Rotation r = Rotation::for_block(kind, d, 11, 2, 1, 0);
      const MatrixD m = r.matrix().cast<double>();
      CHECK(max_abs(m.transpose() * m - MatrixD::Identity(d, d)) < 2e-6);
      const Matrix x = random_matrix(9, d, 3);
      Matrix y = x;
      r.apply(y);
      CHECK(max_abs(y.cast<double>() - x.cast<double>() * m.transpose()) < 2e-6 * x.cwiseAbs().maxCoeff() * d);
      r.invert(y);
      CHECK(max_abs((y - x).cast<double>()) <= 1e-6 * x.cwiseAbs().maxCoeff() * 4);
      if (kind == RotationKind::None) CHECK(y == x);
    }
  }
}

TEST_CASE("rotation: hadamard matches the documented construction", "[rotation]") {
  for (int d : {64, 96, 5}) {
    const Rotation r = Rotation::for_block(RotationKind::Hadamard, d, 7, 3, 1, 1);
    CHECK(max_abs(r.matrix().cast<double>() - reference_hadamard(d, 7, 3, 1, 1)) < 1e-6);
  }
}

TEST_CASE("rotation: one R per (seed, layer, head, tensor)", "[rotation]") {
  for (const RotationKind kind : {RotationKind::Hadamard, RotationKind::Random}) {
    const Matrix a = Rotation::for_block(kind, 32, 1, 0, 0, 0).matrix();
    CHECK(Rotation::for_block(kind, 32, 1, 0, 0, 0).matrix() == a);
    CHECK(Rotation::for_block(kind, 32, 2, 0, 0, 0).matrix() != a);
    CHECK(Rotation::for_block(kind, 32, 1, 1, 0, 0).matrix() != a);
    CHECK(Rotation::for_block(kind, 32, 1, 0, 1, 0).matrix() != a);
    CHECK(Rotation::for_block(kind, 32, 1, 0, 0, 1).matrix() != a);
  }
}

TEST_CASE("rotation parameter: rotate, quantize, unrotate, element for element; bits unchanged", "[rotation]") {
  const int d = 64, total = 150, p = 100;
  const Matrix k = random_matrix(total, d, 5), v = random_matrix(total, d, 6);
  for (const char* kind : {"hadamard", "random"}) {
    INFO(kind);
    const auto plain = Registry::global().build("uniform:bits=3,group=32,axis=token");
    const auto rotated = Registry::global().build(fmt::format("uniform:bits=3,group=32,axis=token,rotation={}", kind));
    CHECK(rotated->spec() == fmt::format("uniform:bits=3,group=32,axis=token,rotation={}", kind));
    BlockContext ctx = test::block_context(d, total, p, 9);
    ctx.layer = 1;
    ctx.kv_head = 1;
    auto a = plain->new_state(ctx), b = rotated->new_state(ctx);
    test::feed(*a, k, v, p, total);
    test::feed(*b, k, v, p, total);
    CHECK(a->bits() == b->bits());
    const RotationKind rk = parse_rotation_kind(kind);
    for (int tensor = 0; tensor < 2; ++tensor) {
      const Rotation r = Rotation::for_block(rk, d, 9, 1, 1, tensor);
      Matrix y = tensor == 0 ? k : v, yq(total, d);
      r.apply(y);
      fake_quantize(y, {3, QuantAxis::PerToken, 32}, yq);
      r.invert(yq);
      const ConstMatrixRef got = tensor == 0 ? b->view().keys : b->view().values;
      CHECK(max_abs((got - yq).cast<double>()) == 0.0);
    }
  }
  // kivi and kcvt take the parameter too, and a dropper's per-token store refuses it.
  CHECK(Registry::global().canonical("kivi:rotation=hadamard") ==
        "kivi:bits=2,group=32,residual=128,rotation=hadamard");
  CHECK(Registry::global().canonical("kcvt:rotation=random") == "kcvt:bits=2,buffer=64,rotation=random");
  // At its default the parameter is left out, so earlier specs keep their canonical form.
  CHECK(Registry::global().canonical("kivi:rotation=none") == "kivi:bits=2,group=32,residual=128");
  CHECK(Registry::global().canonical("uniform-4bit") == "uniform:bits=4,group=64,axis=token");
  CHECK_THROWS_WITH(Registry::global().build("h2o:inner=(uniform:axis=token,rotation=hadamard)"),
                    Catch::Contains("does not rotate"));
}

TEST_CASE("rotation lowers per-token key error when keys have outlier channels", "[rotation]") {
  // Per-token groups span every channel, so one outlier channel sets the step
  // of the whole row; a rotation spreads its energy over all channels.
  SynthOptions o;
  o.preset = "small";  // d = 64
  o.seq_len = 512;
  o.prompt_len = 256;
  o.outlier_channels = 2;
  o.outlier_scale = 8.0f;
  const SynthOptions r = resolve_synth_options(o);
  const LayerData layer = synth_layer(r, 1, 1);
  auto key_error = [&](const std::string& spec) {
    const auto c = Registry::global().build(spec);
    double err = 0, ref = 0;
    for (int h = 0; h < r.num_kv_heads; ++h) {
      BlockContext ctx = test::block_context(r.head_dim, r.seq_len, r.prompt_len, 3);
      ctx.layer = 1;
      ctx.kv_head = h;
      auto s = c->new_state(ctx);
      const Matrix& k = layer.keys[h];
      test::feed(*s, k, layer.values[h], r.prompt_len, r.seq_len);
      err += (s->view().keys - k).squaredNorm();
      ref += k.squaredNorm();
    }
    return std::sqrt(err / ref);
  };
  for (int bits : {2, 3, 4}) {
    const std::string base = fmt::format("uniform:bits={},group=0,axis=token", bits);
    const double none = key_error(base);
    const double hadamard = key_error(base + ",rotation=hadamard");
    const double random = key_error(base + ",rotation=random");
    INFO("bits " << bits << ": none " << none << ", hadamard " << hadamard << ", random " << random);
    CHECK(hadamard < 0.75 * none);
    CHECK(random < 0.75 * none);
  }
}
