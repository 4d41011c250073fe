#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <vector>

#include "kvlab/compressors/gear_codec.hpp"
#include "kvlab/compressors/registry.hpp"
#include "kvlab/compressors/stream_state.hpp"
#include "kvlab/core/rng.hpp"
#include "kvlab/quant/lowrank.hpp"
#include "test_support.hpp"

using namespace kvlab;

namespace {

Matrix synthetic(int n, int d, std::uint64_t seed, bool outliers) {
  Rng rng(seed);
  Matrix a(n, 3), b(3, d), x(n, d);
  for (int i = 0; i < a.size(); ++i) a.data()[i] = static_cast<float>(rng.normal());
  for (int i = 0; i < b.size(); ++i) b.data()[i] = static_cast<float>(rng.normal());
  x = a * b;
  for (int i = 0; i < x.size(); ++i) x.data()[i] += static_cast<float>(0.3 * rng.normal());
  if (outliers)
    for (int j = 0; j < 12; ++j) x(static_cast<int>(rng.below(n)), static_cast<int>(rng.below(d))) = (j % 2 ? 40.f : -40.f);
  return x;
}

BlockContext context(int d, int tokens, std::uint64_t seed = 1) {
  BlockContext c = test::block_context(d, tokens, tokens, seed);
  c.num_kv_heads = 8;
  return c;
}

struct Run {
  std::unique_ptr<CacheState> state;
  double k_err, v_err;
};

Run run(const std::string& spec, const Matrix& K, const Matrix& V, int prompt, std::uint64_t seed = 1) {
  auto comp = Registry::global().build(spec);
  Run r{comp->new_state(context(static_cast<int>(K.cols()), static_cast<int>(K.rows()), seed)), 0, 0};
  test::feed(*r.state, K, V, prompt, static_cast<int>(K.rows()));
  const CacheView v = r.state->view();
  r.k_err = (v.keys - K).norm() / K.norm();
  r.v_err = (v.values - V).norm() / V.norm();
  return r;
}

// Closed-form size of one GEAR segment, written from the parameters.
std::uint64_t segment_bits(int n, int d, int b, int G, bool per_channel, double s, int r) {
  const std::uint64_t groups = per_channel ? std::uint64_t(d) * ((n + G - 1) / G) : std::uint64_t(n) * ((d + G - 1) / G);
  const int len = per_channel ? n : d, vecs = per_channel ? d : n;
  const std::uint64_t k = static_cast<std::uint64_t>(std::floor(s * len / 2 + 1e-9));
  const std::uint64_t kept = std::min<std::uint64_t>(2 * k, len) * vecs;
  return std::uint64_t(b) * n * d + 32 * groups + 48 * kept + 16ULL * (n + d) * std::min(r, std::min(n, d));
}

}  // namespace

TEST_CASE("gear: GEAR < GEAR-L < KIVI error with planted outliers", "[gear]") {
  const Matrix K = synthetic(256, 128, 1, true), V = synthetic(256, 128, 2, true);
  const auto g = run("gear:bits=2,group=64", K, V, 256);
  const auto gl = run("gear-l:bits=2,group=64", K, V, 256);
  const auto kv = run("kivi:bits=2,group=64,residual=0", K, V, 256);
  INFO(g.k_err << " " << gl.k_err << " " << kv.k_err << " | " << g.v_err << " " << gl.v_err << " " << kv.v_err);
  CHECK(g.k_err < gl.k_err);
  CHECK(gl.k_err < kv.k_err);
  CHECK(g.v_err < gl.v_err);
  CHECK(gl.v_err < kv.v_err);
  const auto oq = run("outlier-quant:bits=2,group=64", K, V, 256);
  CHECK(oq.k_err < kv.k_err);
  CHECK(g.k_err < oq.k_err);
}

TEST_CASE("gear: decode segments every n_b tokens, FP16 buffer exact, closed-form bits", "[gear]") {
  const int d = 128, P = 200, steps = 130;
  const Matrix K = synthetic(P + steps, d, 3, false), V = synthetic(P + steps, d, 4, false);
  const auto r = run("gear:bits=2,group=64,sparsity=0.02,rank=4,rank_decode=2,loop=3,buffer=64", K, V, P);
  const auto& st = dynamic_cast<const StreamCacheState&>(*r.state);
  // Keys: prefill ⌊200/64⌋·64 = 192, 8 join the buffer; 8 + 130 = 138 → 2 segments, 10 in FP16.
  CHECK(st.key_stream().segments() == 3);
  CHECK(st.key_stream().fp16_tokens() == 10);
  // Values: the whole prompt, then 130 → 2 segments, 2 in FP16.
  CHECK(st.value_stream().segments() == 3);
  CHECK(st.value_stream().fp16_tokens() == 2);
  const CacheView v = st.view();
  const int t = P + steps;
  CHECK(v.keys.bottomRows(10) == K.bottomRows(10));
  CHECK(v.values.bottomRows(2) == V.bottomRows(2));
  const std::uint64_t keys = segment_bits(192, d, 2, 64, true, 0.02, 4) + 2 * segment_bits(64, d, 2, 64, true, 0.02, 2) +
                             16ULL * 10 * d;
  const std::uint64_t values = segment_bits(200, d, 2, 64, false, 0.02, 4) +
                               2 * segment_bits(64, d, 2, 64, false, 0.02, 2) + 16ULL * 2 * d;
  CHECK(st.bits().total() == keys + values);
  CHECK(st.bits().lowrank == 16ULL * ((192 + d) * 4 + 2 * (64 + d) * 2 + (200 + d) * 4 + 2 * (64 + d) * 2));
  CHECK(t == st.size());
}

TEST_CASE("gear: closed-form bits for gear-l, outlier-quant and kcvt", "[gear]") {
  const int d = 128, P = 256;
  const Matrix K = synthetic(P, d, 5, true), V = synthetic(P, d, 6, true);
  auto total = [&](const std::string& spec) { return run(spec, K, V, P).state->bits().total(); };
  CHECK(total("gear-l:bits=2,group=64,rank=4") ==
        segment_bits(P, d, 2, 64, true, 0, 4) + segment_bits(P, d, 2, 64, false, 0, 4));
  CHECK(total("outlier-quant:bits=2,group=64,sparsity=0.05") ==
        segment_bits(P, d, 2, 64, true, 0.05, 0) + segment_bits(P, d, 2, 64, false, 0.05, 0));
  CHECK(total("gear:bits=4,group=32,rank=8,sparsity=0.02") ==
        segment_bits(P, d, 4, 32, true, 0.02, 8) + segment_bits(P, d, 4, 32, false, 0.02, 8));
  CHECK(total("gear-kcvt:bits=2,rank=4") ==
        segment_bits(P, d, 2, P, true, 0.02, 4) + segment_bits(P, d, 2, d, false, 0.02, 4));
  // compat_outliers=true (layer-scoped, values chosen across heads): tests/test_gear_compat.cpp.
}

TEST_CASE("gear: recompress mode compresses the whole cache every n_b tokens", "[gear]") {
  const int d = 128, P = 128, steps = 70;
  const Matrix K = synthetic(P + steps, d, 7, false), V = synthetic(P + steps, d, 8, false);
  const auto r = run("gear:bits=2,group=64,buffer=64,recompress=true", K, V, P);
  // Last recompression at t = 192: one segment of 192 tokens each, with rank_decode (2), as the
  // released whole-cache path; 6 + 6 FP16 rows.
  const std::uint64_t expect = segment_bits(192, d, 2, 64, true, 0.02, 2) + segment_bits(192, d, 2, 64, false, 0.02, 2) +
                               16ULL * 12 * d;
  CHECK(r.state->bits().total() == expect);
  const CacheView v = r.state->view();
  CHECK(v.keys.bottomRows(6) == K.bottomRows(6));
  CHECK(v.values.bottomRows(6) == V.bottomRows(6));
  CHECK(r.k_err > 0);
  CHECK(r.k_err < 0.5);
}

TEST_CASE("gear: deterministic per seed; seeds change the low-rank factors", "[gear]") {
  const Matrix K = synthetic(192, 128, 9, true), V = synthetic(192, 128, 10, true);
  const auto a = run("gear", K, V, 150, 1), b = run("gear", K, V, 150, 1), c = run("gear", K, V, 150, 2);
  CHECK(a.state->view().keys == b.state->view().keys);
  CHECK(a.state->view().values == b.state->view().values);
  CHECK(a.state->view().keys != c.state->view().keys);
  CHECK(a.state->bits() == c.state->bits());
}

TEST_CASE("gear: registry variants and parameter checks", "[gear]") {
  const auto& reg = Registry::global();
  for (const char* m : {"gear", "gear-l", "outlier-quant", "gear-kcvt", "gear-l-kcvt"}) CHECK(reg.find(m) != nullptr);
  CHECK_THROWS(reg.build("gear-l:sparsity=0.1"));
  CHECK_THROWS(reg.build("outlier-quant:rank=2"));
  CHECK_THROWS(reg.build("gear:group=64,buffer=65"));
  for (const char* p : {"gear-2bit", "gear-4bit", "gear-l-2bit", "gear-kcvt-2bit", "outlier-quant-2bit"})
    CHECK_NOTHROW(reg.build(p));
}

// No sum in the codec may depend on where its buffers start (e.g. a vector
// loop peeled until the address is aligned): the same values read from and
// written to buffers shifted by 0..15 floats give the same bits.
TEST_CASE("gear: the codec and the power iteration give the same bits at every buffer alignment", "[gear]") {
  for (const int d : {128, 52}) {
    const int n = 200;
    const Matrix x = synthetic(n, d, 21, true);
    struct Case {
      QuantAxis axis;
      int group;
    };
    for (const Case c : {Case{QuantAxis::PerChannel, 64}, Case{QuantAxis::PerToken, 64}, Case{QuantAxis::PerToken, 0}}) {
      GearCodecConfig cfg;
      cfg.quant = QuantConfig{2, c.axis, c.group};
      cfg.sparsity = 0.02;
      cfg.rank = 4;
      const GearCodec codec(cfg);
      SegmentContext ctx;
      ctx.seed = 3;
      ctx.prefill = true;
      Matrix first_out, first_a, first_p;
      BitCount first_bits;
      for (int shift = 0; shift < 16; ++shift) {
        std::vector<float> in(static_cast<std::size_t>(n) * d + 16), out(in.size());
        Eigen::Map<Matrix> xs(in.data() + shift, n, d), os(out.data() + (15 - shift), n, d);
        xs = x;
        const ConstMatrixRef xr(xs);
        REQUIRE(xr.data() == xs.data());  // bound in place, not copied to an aligned temporary
        const BitCount bits = codec.encode(xs, os, ctx);
        Rng rng(7);
        const LowRankFactors f = power_iteration(xs, 6, 3, rng);
        if (shift == 0) {
          first_out = os;
          first_bits = bits;
          first_a = f.A;
          first_p = f.P;
          continue;
        }
        INFO("d " << d << ", group " << c.group << ", shift " << shift);
        CHECK(bits == first_bits);
        CHECK(std::memcmp(Matrix(os).data(), first_out.data(), sizeof(float) * first_out.size()) == 0);
        CHECK(std::memcmp(f.A.data(), first_a.data(), sizeof(float) * first_a.size()) == 0);
        CHECK(std::memcmp(f.P.data(), first_p.data(), sizeof(float) * first_p.size()) == 0);
      }
    }
  }
}
