// core/simd.hpp's vector helpers against their scalar definitions.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "kvlab/core/fp16.hpp"
#include "kvlab/core/simd.hpp"

using namespace kvlab;

namespace {
std::uint32_t bits_of(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}
float float_of(std::uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
}  // namespace

TEST_CASE("simd: round8_to_fp16 equals round_to_fp16 bit for bit", "[simd]") {
  // Every 997th bit pattern (all exponents, both signs) plus the edges: FP16's
  // largest finite value and the overflow midpoint, the normal/subnormal
  // boundary 2^-14, the smallest subnormal 2^-24 and the ties around them.
  std::vector<float> values;
  for (std::uint64_t u = 0; u < (1ULL << 32); u += 997) values.push_back(float_of(static_cast<std::uint32_t>(u)));
  for (float v : {0.0f, 65504.0f, 65519.99f, 65520.0f, 65536.0f, 0x1p-14f, 0x1.ffcp-15f, 0x1.ffep-15f, 0x1p-24f,
                  0x1p-25f, 0x1.8p-24f, 0x1.000002p-25f, 1.0009765625f, 1.00048828125f, 1.00146484375f,
                  std::numeric_limits<float>::infinity(), std::numeric_limits<float>::max(),
                  std::numeric_limits<float>::denorm_min()}) {
    values.push_back(v);
    values.push_back(-v);
  }
  while (values.size() % 8 != 0) values.push_back(1.0f);
  std::size_t mismatches = 0;
  for (std::size_t i = 0; i < values.size(); i += 8) {
    const simd::f8 r = simd::round8_to_fp16(simd::load8(values.data() + i));
    for (int l = 0; l < 8; ++l) {
      const float want = round_to_fp16(values[i + l]), got = r[l];
      if (std::isnan(want) ? !std::isnan(got) : bits_of(want) != bits_of(got)) ++mismatches;
    }
  }
  CHECK(values.size() > 4000000);
  CHECK(mismatches == 0);
}

TEST_CASE("simd: lane masks, min/max and the dot-product reduction", "[simd]") {
  const simd::i8 m = {0, -1, 0, 0, -1, -1, 0, -1};
  CHECK(simd::movemask8(m) == 0b10110010u);
  const std::uint8_t bytes[8] = {0, 1, 0, 0, 7, 1, 0, 255};
  CHECK(simd::movemask8(simd::mask8(bytes)) == 0b10110010u);

  const float a[8] = {1, -2, 3, 0, 5, -6, 7, 8}, b[8] = {0, -1, 4, -0.0f, 5, -7, 9, 1};
  const simd::f8 lo = simd::min8(simd::load8(a), simd::load8(b)), hi = simd::max8(simd::load8(a), simd::load8(b));
  for (int l = 0; l < 8; ++l) {
    CHECK(bits_of(lo[l]) == bits_of(std::min(a[l], b[l])));
    CHECK(bits_of(hi[l]) == bits_of(std::max(a[l], b[l])));
  }
  CHECK(bits_of(simd::constant8(-0.0f)[3]) == bits_of(-0.0f));

  // reduce4: ((v0 + v4) + (v1 + v5)) + ((v2 + v6) + (v3 + v7)) per vector.
  const float v[4][8] = {{1e8f, 1, -1e8f, 1, 0.5f, 0.25f, 3, 7},
                         {1, 2, 3, 4, 5, 6, 7, 8},
                         {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f, 0.8f},
                         {-1, 1e-8f, 1, 1e-8f, 1e20f, -1e20f, 3, 4}};
  const simd::f4 r = simd::reduce4(simd::load8(v[0]), simd::load8(v[1]), simd::load8(v[2]), simd::load8(v[3]));
  for (int j = 0; j < 4; ++j) {
    const float* x = v[j];
    const float want = ((x[0] + x[4]) + (x[1] + x[5])) + ((x[2] + x[6]) + (x[3] + x[7]));
    CHECK(bits_of(r[j]) == bits_of(want));
  }

  // reduce_lanes8: lane j is the min (max) over vector j's lanes, for data
  // where every lane position holds the extreme of some vector.
  simd::f8 w[8];
  float lo_want[8], hi_want[8];
  for (int j = 0; j < 8; ++j) {
    const float fj = static_cast<float>(j);
    for (int l = 0; l < 8; ++l) w[j][l] = static_cast<float>(((j * 5 + l * 3) % 8) - 3) * (1.0f + 0.125f * fj);
    w[j][j] = -100.0f - fj;        // the minimum sits in lane j ...
    w[j][(j + 3) % 8] = 50.0f + fj;  // ... and the maximum three lanes on
    lo_want[j] = -100.0f - fj;
    hi_want[j] = 50.0f + fj;
  }
  const simd::f8 mins = simd::reduce_lanes8(w, [](simd::f8 x, simd::f8 y) { return simd::min8(x, y); });
  const simd::f8 maxs = simd::reduce_lanes8(w, [](simd::f8 x, simd::f8 y) { return simd::max8(x, y); });
  for (int j = 0; j < 8; ++j) {
    CHECK(mins[j] == lo_want[j]);
    CHECK(maxs[j] == hi_want[j]);
  }
}
