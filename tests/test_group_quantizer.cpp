// The group quantizer against hand-computed cases and a plain reference.
#include <catch2/catch.hpp>

#include <cmath>
#include <utility>

#include "kvlab/core/fp16.hpp"
#include "kvlab/core/rng.hpp"
#include "kvlab/quant/group_quantizer.hpp"
#include "kvlab/quant/outliers.hpp"

using namespace kvlab;

namespace {

// Plain reference: the formula of docs/methods.md, one group at a time,
// std::nearbyint; masked elements take no part in min/max and reconstruct as 0.
Matrix reference_quantize(const Matrix& x, int bits, QuantAxis axis, int group, const ElementMask* mask = nullptr) {
  Matrix out(x.rows(), x.cols());
  const int n = static_cast<int>(x.rows()), d = static_cast<int>(x.cols());
  const int len = axis == QuantAxis::PerToken ? d : n;
  const int g = group <= 0 ? len : std::min(group, len);
  const float levels = static_cast<float>((1 << bits) - 1);
  const int outer = axis == QuantAxis::PerToken ? n : d;
  for (int o = 0; o < outer; ++o) {
    for (int s = 0; s < len; s += g) {
      const int e = std::min(len, s + g);
      auto at = [&](int i) -> float { return axis == QuantAxis::PerToken ? x(o, i) : x(i, o); };
      auto excluded = [&](int i) {
        return mask != nullptr && (axis == QuantAxis::PerToken ? (*mask)(o, i) : (*mask)(i, o)) != 0;
      };
      float mn = INFINITY, mx = -INFINITY;
      for (int i = s; i < e; ++i) {
        if (excluded(i)) continue;
        mn = std::min(mn, at(i));
        mx = std::max(mx, at(i));
      }
      const bool all_excluded = mn > mx;
      const float zero = all_excluded ? 0.0f : round_to_fp16(mn);
      const float scale = all_excluded ? 0.0f : round_to_fp16((mx - mn) / levels);
      for (int i = s; i < e; ++i) {
        float v = zero;
        if (excluded(i)) {
          v = 0.0f;
        } else if (scale != 0.0f) {
          const float q = std::nearbyint(std::clamp((at(i) - zero) / scale, 0.0f, levels));
          v = q * scale + zero;
        }
        (axis == QuantAxis::PerToken ? out(o, i) : out(i, o)) = v;
      }
    }
  }
  return out;
}

Matrix random_matrix(int n, int d, std::uint64_t seed) {
  Rng rng(seed);
  Matrix m(n, d);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < d; ++j) m(i, j) = static_cast<float>(rng.normal() * (1.0 + (j % 7 == 0 ? 4.0 : 0.0)));
  return m;
}

}  // namespace

TEST_CASE("2-bit min-max on known data", "[quant]") {
  // Group [0, 1, 2, 3]: mn = 0, s = 1 → exact. Group [0, 0.4, 0.6, 3]: s = 1 →
  // codes 0, 0, 1, 3 (0.4 rounds down, 0.6 up).
  Matrix x(2, 4);
  x << 0, 1, 2, 3, 0, 0.4f, 0.6f, 3;
  Matrix out(2, 4);
  const BitCount b = fake_quantize(x, {2, QuantAxis::PerToken, 4}, out);
  Matrix expected(2, 4);
  expected << 0, 1, 2, 3, 0, 0, 1, 3;
  CHECK(out == expected);
  CHECK(b.codes == 2 * 8);
  CHECK(b.metadata == 32 * 2);
}

TEST_CASE("levels are 2^b - 1 for every b (3 bits: 7 steps)", "[quant]") {
  Matrix x(1, 8);
  x << 0, 1, 2, 3, 4, 5, 6, 7;
  Matrix out(1, 8);
  fake_quantize(x, {3, QuantAxis::PerToken, 0}, out);
  CHECK(out == x);
  // Round half to even: with s = 2 (levels 3, range 6), 1 → 0.5 → 0 and 3 → 1.5 → 2.
  Matrix y(1, 4);
  y << 0, 1, 3, 6;
  Matrix o2(1, 4);
  fake_quantize(y, {2, QuantAxis::PerToken, 0}, o2);
  CHECK(o2(0, 1) == 0.0f);
  CHECK(o2(0, 2) == 4.0f);
}

TEST_CASE("constant group reconstructs to its FP16-rounded value", "[quant]") {
  Matrix x = Matrix::Constant(3, 5, 0.1f);
  Matrix out(3, 5);
  fake_quantize(x, {2, QuantAxis::PerChannel, 0}, out);
  CHECK((out.array() == round_to_fp16(0.1f)).all());
}

TEST_CASE("scale and zero point are rounded to FP16 before coding", "[quant]") {
  // mn = 0.1 is not an FP16 number; the reconstruction must use fp16(0.1).
  Matrix x(1, 2);
  x << 0.1f, 1.1f;
  Matrix out(1, 2);
  fake_quantize(x, {8, QuantAxis::PerToken, 0}, out);
  const float zero = round_to_fp16(0.1f);
  const float scale = round_to_fp16(1.0f / 255.0f);
  CHECK(out(0, 0) == zero);
  CHECK(out(0, 1) == std::nearbyint((1.1f - zero) / scale) * scale + zero);
}

TEST_CASE("per-token and per-channel grouping match the plain reference", "[quant]") {
  const Matrix x = random_matrix(70, 48, 7);
  for (int bits : {1, 2, 3, 4, 8}) {
    for (QuantAxis axis : {QuantAxis::PerToken, QuantAxis::PerChannel}) {
      for (int group : {0, 1, 16, 32, 50}) {
        Matrix out(x.rows(), x.cols());
        const BitCount b = fake_quantize(x, {bits, axis, group}, out);
        const Matrix ref = reference_quantize(x, bits, axis, group);
        INFO("bits " << bits << " axis " << to_string(axis) << " group " << group);
        CHECK(out == ref);
        CHECK(b == quant_bits(70, 48, {bits, axis, group}));
      }
    }
  }
}

TEST_CASE("per-channel groups span tokens, per-token groups span channels", "[quant]") {
  // One huge channel: per-channel quantization isolates it, per-token does not.
  Matrix x = random_matrix(64, 32, 3);
  x.col(5) *= 100.0f;
  Matrix a(64, 32), b(64, 32);
  fake_quantize(x, {2, QuantAxis::PerChannel, 32}, a);
  fake_quantize(x, {2, QuantAxis::PerToken, 32}, b);
  Matrix xa = x, xb = x;
  xa.col(5).setZero();
  a.col(5).setZero();
  b.col(5).setZero();
  CHECK((xa - a).norm() < 0.5 * (xa - b).norm());
}

TEST_CASE("group counts and bits follow the closed form", "[quant]") {
  CHECK(quant_group_count(128, 128, {2, QuantAxis::PerToken, 32}) == 128 * 4);
  CHECK(quant_group_count(100, 128, {2, QuantAxis::PerChannel, 32}) == 128 * 4);  // 32+32+32+4
  CHECK(quant_group_count(100, 128, {2, QuantAxis::PerChannel, 0}) == 128);
  CHECK(quant_group_count(100, 128, {2, QuantAxis::PerToken, 0}) == 100);
  const BitCount b = quant_bits(100, 128, {3, QuantAxis::PerChannel, 32});
  CHECK(b.codes == 3ULL * 100 * 128);
  CHECK(b.metadata == 32ULL * 128 * 4);
}

TEST_CASE("more bits never give larger error", "[quant]") {
  const Matrix x = random_matrix(64, 64, 11);
  double prev = INFINITY;
  for (int bits = 1; bits <= 8; ++bits) {
    Matrix out(64, 64);
    fake_quantize(x, {bits, QuantAxis::PerToken, 32}, out);
    const double err = (x - out).norm();
    CHECK(err < prev);
    prev = err;
  }
}

TEST_CASE("excluded elements skip min/max and reconstruct as zero", "[quant]") {
  Matrix x(1, 4);
  x << 0, 1, 1000, 3;
  ElementMask m = ElementMask::Zero(1, 4);
  m(0, 2) = 1;
  Matrix out(1, 4);
  fake_quantize(x, {2, QuantAxis::PerToken, 0}, out, &m);
  Matrix expected(1, 4);
  expected << 0, 1, 0, 3;
  CHECK(out == expected);
}

TEST_CASE("masked quantization matches the plain reference on every path", "[quant]") {
  // Channels not a multiple of 8 (vector tails), groups not a multiple of 8,
  // a wholly excluded group, exact zeros of both signs and constant runs.
  for (const auto& [n, d] : {std::pair{70, 45}, std::pair{130, 128}, std::pair{9, 3}}) {
    Matrix x = random_matrix(n, d, static_cast<std::uint64_t>(n + d));
    x.row(1).setZero();
    x(2, 0) = -0.0f;
    x.col(d - 1).setConstant(0.25f);
    Rng rng(static_cast<std::uint64_t>(3 * n + d));
    ElementMask mask(n, d);
    for (int r = 0; r < n; ++r)
      for (int c = 0; c < d; ++c) mask(r, c) = rng.below(10) == 0 ? 1 : 0;
    mask.row(4).setOnes();  // every per-token group of this row excluded
    mask.col(1).setOnes();  // every per-channel group of this column excluded
    for (int bits : {1, 2, 4, 8})
      for (QuantAxis axis : {QuantAxis::PerToken, QuantAxis::PerChannel})
        for (int group : {0, 1, 5, 8, 32, 64}) {
          INFO("n " << n << " d " << d << " bits " << bits << " axis " << to_string(axis) << " group " << group);
          Matrix out(n, d), plain(n, d);
          fake_quantize(x, {bits, axis, group}, out, &mask);
          CHECK(out == reference_quantize(x, bits, axis, group, &mask));
          fake_quantize(x, {bits, axis, group}, plain);
          CHECK(plain == reference_quantize(x, bits, axis, group));
          // In place (out aliases x) gives the same.
          Matrix in_place = x;
          fake_quantize(in_place, {bits, axis, group}, in_place, &mask);
          CHECK(in_place == out);
        }
  }
}

TEST_CASE("a strided block quantizes like its copy", "[quant]") {
  const Matrix wide = random_matrix(96, 80, 13);
  for (QuantAxis axis : {QuantAxis::PerToken, QuantAxis::PerChannel}) {
    Matrix a(96, 37), b(96, 37);
    fake_quantize(wide.middleCols(5, 37), {2, axis, 32}, a);
    fake_quantize(Matrix(wide.middleCols(5, 37)), {2, axis, 32}, b);
    CHECK(a == b);
  }
}

TEST_CASE("quantize_with_residual equals fake_quantize, add_outliers and x - out", "[quant]") {
  for (QuantAxis axis : {QuantAxis::PerToken, QuantAxis::PerChannel}) {
    const Matrix x = random_matrix(150, 45, 21);
    const OutlierSet s = extract_outliers(x, OutlierConfig{axis, 0.1, -1});
    for (int group : {0, 8, 32}) {
      const QuantConfig cfg{2, axis, group};
      Matrix want(x.rows(), x.cols()), out(x.rows(), x.cols()), residual;
      fake_quantize(x, cfg, want, &s.mask);
      add_outliers(s, want);
      const BitCount b = quantize_with_residual(x, cfg, out, residual, &s.mask);
      CHECK(b == quant_bits(150, 45, cfg));
      CHECK(out == want);
      CHECK(residual == Matrix(x - want));
      // Without outliers: plain quantization and its residual.
      Matrix plain(x.rows(), x.cols());
      fake_quantize(x, cfg, want);
      quantize_with_residual(x, cfg, plain, residual);
      CHECK(plain == want);
      CHECK(residual == Matrix(x - want));
    }
  }
}
