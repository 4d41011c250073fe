// decode_half (the float16 read path of dumps): every one of the 65536
// binary16 patterns decodes exactly as the scalar conversion does, on the
// vector path, its scalar tail and with several threads.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <vector>

#include "kvlab/core/fp16.hpp"

using namespace kvlab;

TEST_CASE("decode_half matches the scalar conversion for every pattern", "[io][fp16]") {
  std::vector<std::uint16_t> bits(65536 + 5);  // + 5: a tail shorter than one vector
  for (std::size_t i = 0; i < bits.size(); ++i) bits[i] = static_cast<std::uint16_t>(i * 40503u);
  for (const int threads : {1, 2}) {
    std::vector<float> out(bits.size(), -1.0f);
    decode_half(bits.data(), out.data(), bits.size(), threads);
    for (std::size_t i = 0; i < bits.size(); ++i) {
      const float want = half_bits_to_float(bits[i]);
      if (std::isnan(want)) {
        REQUIRE(std::isnan(out[i]));
      } else {
        INFO("pattern " << bits[i]);
        REQUIRE(std::memcmp(&out[i], &want, sizeof want) == 0);  // -0 and denormals included
      }
    }
  }
  std::vector<float> none(1, 7.0f);
  decode_half(bits.data(), none.data(), 0, 2);
  CHECK(none[0] == 7.0f);
}
