// KIVI's residual semantics and bit accounting, and the stream policies of
// uniform / KCVT, checked against closed forms.
#include <catch2/catch.hpp>

#include "kvlab/compressors/registry.hpp"
#include "kvlab/compressors/stream_state.hpp"
#include "kvlab/core/rng.hpp"
#include "kvlab/quant/group_quantizer.hpp"
#include "test_support.hpp"

using namespace kvlab;
using test::random_matrix;

namespace {

BlockContext context(int d, int tokens) { return test::block_context(d, tokens, 0); }

// Feeds prefill of p tokens then `steps` decode tokens.
std::unique_ptr<CacheState> feed(const Compressor& c, const Matrix& k, const Matrix& v, int p, int steps) {
  auto s = c.new_state(context(static_cast<int>(k.cols()), static_cast<int>(k.rows())));
  test::feed(*s, k, v, p, p + steps);
  return s;
}

// KIVI closed form: keys ⌊t_k/R⌋·R quantized per-channel (groups of G tokens),
// values all but the newest R quantized per-token (groups of G channels).
BitCount kivi_bits(int quant_keys, int quant_values, int tokens, int d, int bits, int group) {
  BitCount b;
  b.codes = static_cast<std::uint64_t>(bits) * d * (quant_keys + quant_values);
  b.metadata = 32ULL * (static_cast<std::uint64_t>(d) * (quant_keys / group) +
                        static_cast<std::uint64_t>(quant_values) * ((d + group - 1) / group));
  b.fp16_buffer = 16ULL * d * ((tokens - quant_keys) + (tokens - quant_values));
  return b;
}

}  // namespace

TEST_CASE("KIVI prefill quantizes floor(P/R)*R keys and all but R values", "[kivi]") {
  const int d = 64, p = 300, r = 128, g = 32;
  const Matrix k = random_matrix(p, d, 1), v = random_matrix(p, d, 2);
  auto c = Registry::global().build("kivi:bits=2,group=32,residual=128");
  auto s = feed(*c, k, v, p, 0);
  const CacheView view = s->view();
  // Keys [256, 300) and values [172, 300) are exact FP16.
  CHECK(view.keys.bottomRows(p - 256) == k.bottomRows(p - 256));
  CHECK(view.keys.row(255) != k.row(255));
  CHECK(view.values.bottomRows(r) == v.bottomRows(r));
  CHECK(view.values.row(p - r - 1) != v.row(p - r - 1));
  // The quantized key block equals the quantizer applied to it directly.
  Matrix expected(256, d);
  fake_quantize(k.topRows(256), {2, QuantAxis::PerChannel, g}, expected);
  CHECK(view.keys.topRows(256) == expected);
  CHECK(s->bits() == kivi_bits(256, p - r, p, d, 2, g));
}

TEST_CASE("KIVI decode: a key block is quantized when R keys accumulate; values one at a time", "[kivi]") {
  const int d = 32, p = 100, r = 64, g = 16, total = 400;
  const Matrix k = random_matrix(total, d, 3), v = random_matrix(total, d, 4);
  auto c = Registry::global().build("kivi:bits=3,group=16,residual=64");
  auto s = c->new_state(context(d, total));
  s->prefill(k.topRows(p), v.topRows(p), {});
  CHECK(s->bits() == kivi_bits(64, p - r, p, d, 3, g));
  for (int t = p; t < total; ++t) {
    s->append(k.row(t), v.row(t), {});
    const int n = t + 1;
    const int qk = n / r * r;  // blocks of R completed
    CHECK(s->bits() == kivi_bits(qk, n - r, n, d, 3, g));
    const CacheView view = s->view();
    if (qk <= t)
      CHECK(view.keys.row(t) == k.row(t));  // still in the FP16 residual
    else
      CHECK(view.keys.row(t) != k.row(t));  // just quantized with its block
    CHECK(view.values.row(t) == v.row(t));  // the newest value is FP16
  }
  // Every completed key block was quantized on its own (groups never straddle blocks).
  const CacheView view = s->view();
  Matrix expected(r, d);
  fake_quantize(k.middleRows(128, r), {3, QuantAxis::PerChannel, g}, expected);
  CHECK(view.keys.middleRows(128, r) == expected);
}

TEST_CASE("KIVI never quantizes a lone key token", "[kivi]") {
  const int d = 16;
  const Matrix k = random_matrix(40, d, 5), v = random_matrix(40, d, 6);
  auto c = Registry::global().build("kivi:bits=2,group=8,residual=8");
  auto s = feed(*c, k, v, 9, 0);
  CHECK(s->view().keys.row(8) == k.row(8));
  CHECK(s->bits().codes == 2ULL * d * (8 + 1));  // 8 keys + 1 value quantized
}

TEST_CASE("KIVI rejects a residual that is not a multiple of the group", "[kivi]") {
  CHECK_THROWS_WITH(Registry::global().build("kivi:group=32,residual=100"),
                    Catch::Contains("residual (100) must be a multiple of group (32)"));
}

TEST_CASE("uniform per-token quantizes every token at once", "[uniform]") {
  const int d = 128, p = 50;
  const Matrix k = random_matrix(p + 10, d, 7), v = random_matrix(p + 10, d, 8);
  auto c = Registry::global().build("uniform:bits=4,group=64");
  auto s = feed(*c, k, v, p, 10);
  BitCount expected;
  expected.codes = 4ULL * 2 * 60 * d;
  expected.metadata = 32ULL * 2 * 60 * 2;
  CHECK(s->bits() == expected);
  Matrix row(1, d);
  fake_quantize(k.row(55), {4, QuantAxis::PerToken, 64}, row);
  CHECK(s->view().keys.row(55) == row);
}

TEST_CASE("uniform per-channel waits for full groups of tokens", "[uniform]") {
  const int d = 8, p = 20;
  const Matrix k = random_matrix(40, d, 9), v = random_matrix(40, d, 10);
  auto c = Registry::global().build("uniform:bits=2,group=16,axis=channel");
  auto s = feed(*c, k, v, p, 11);  // 31 tokens: one group of 16 per channel, 15 FP16
  BitCount expected;
  expected.codes = 2ULL * 2 * 16 * d;
  expected.metadata = 32ULL * 2 * d;
  expected.fp16_buffer = 16ULL * 2 * 15 * d;
  CHECK(s->bits() == expected);
}

TEST_CASE("KCVT: per-channel keys over the whole prompt, decode keys in buffer blocks", "[kcvt]") {
  const int d = 16, p = 100;
  const Matrix k = random_matrix(200, d, 11), v = random_matrix(200, d, 12);
  auto c = Registry::global().build("kcvt:bits=2,buffer=32");
  auto s = feed(*c, k, v, p, 70);  // decode: two key segments of 32, 6 keys FP16
  BitCount expected;
  expected.codes = 2ULL * d * (164 + 170);
  expected.metadata = 32ULL * (d * 3 + 170);  // key groups: prompt + 2 blocks per channel; one per value row
  expected.fp16_buffer = 16ULL * d * 6;
  CHECK(s->bits() == expected);
  Matrix expected_keys(p, d);
  fake_quantize(k.topRows(p), {2, QuantAxis::PerChannel, 0}, expected_keys);
  CHECK(s->view().keys.topRows(p) == expected_keys);
}
