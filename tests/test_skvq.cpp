// SKVQ: FP8 rounding, the clipped quantizer and channel clustering against
// plain references, the method element for element (sinks, window, pre-RoPE
// keys, calibrated groups), exact bits, and what reordering is for.
#include <catch2/catch.hpp>

#include <cmath>

#include "kvlab/compressors/registry.hpp"
#include "kvlab/core/fp16.hpp"
#include "kvlab/core/fp8.hpp"
#include "kvlab/io/synth.hpp"
#include "kvlab/quant/clipped_quantizer.hpp"
#include "kvlab/quant/rope_transform.hpp"
#include "test_support.hpp"

using namespace kvlab;
using test::random_matrix;

namespace {

// Plain clipped quantization of one token (docs/methods/skvq.md).
void ref_clipped(const float* x, float* out, const ChannelGroups& groups, int bits, float clip, bool fp8) {
  const float levels = float((1 << bits) - 1);
  for (const auto& g : groups) {
    float mn = x[g[0]], mx = x[g[0]];
    for (int c : g) {
      mn = std::min(mn, x[c]);
      mx = std::max(mx, x[c]);
    }
    const float zero = fp8 ? round_to_fp8_e4m3(clip * mn) : round_to_fp16(clip * mn);
    const float scale = fp8 ? round_to_fp8_e4m3(clip * (mx - mn) / levels) : round_to_fp16(clip * (mx - mn) / levels);
    for (int c : g) {
      if (scale == 0.0f) {
        out[c] = zero;
        continue;
      }
      float q = std::nearbyint((x[c] - zero) / scale);
      q = std::min(std::max(q, 0.0f), levels);
      out[c] = q * scale + zero;
    }
  }
}

int ceil_log2(int n) {
  int b = 0;
  while ((1 << b) < n) ++b;
  return b;
}

}  // namespace

TEST_CASE("fp8 e4m3 rounding", "[skvq]") {
  CHECK(round_to_fp8_e4m3(1.0f) == 1.0f);
  CHECK(round_to_fp8_e4m3(0.1f) == 0.1015625f);
  CHECK(round_to_fp8_e4m3(-3.3f) == -3.25f);
  CHECK(round_to_fp8_e4m3(1.0625f) == 1.0f);   // a tie, to even
  CHECK(round_to_fp8_e4m3(1.1875f) == 1.25f);  // a tie, to even
  CHECK(round_to_fp8_e4m3(448.0f) == 448.0f);
  CHECK(round_to_fp8_e4m3(1000.0f) == 448.0f);  // saturates
  CHECK(round_to_fp8_e4m3(std::ldexp(1.0f, -9)) == std::ldexp(1.0f, -9));  // smallest subnormal
  CHECK(round_to_fp8_e4m3(0.0009f) == 0.0f);
  CHECK(round_to_fp8_e4m3(0.0f) == 0.0f);
}

TEST_CASE("clipped quantizer matches the plain reference", "[skvq]") {
  const int d = 24;
  Matrix x = random_matrix(30, d, 8);
  x.col(5) *= 10.0f;
  x.row(3).setConstant(0.7f);  // a constant token: scale 0
  const ChannelGroups groups{{0, 5, 9, 23}, {1, 2, 3, 4}, {6, 7, 8, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22}};
  for (int bits : {1, 2, 4}) {
    for (double clip : {1.0, 0.9}) {
      for (MetaFormat meta : {MetaFormat::Fp16, MetaFormat::Fp8}) {
        Matrix out(30, d), expect(30, d);
        const BitCount b = clipped_quantize(x, groups, {bits, clip, meta}, out);
        for (int r = 0; r < 30; ++r)
          ref_clipped(x.row(r).data(), expect.row(r).data(), groups, bits, float(clip), meta == MetaFormat::Fp8);
        CHECK(out == expect);
        CHECK(b.codes == std::uint64_t(bits) * 30 * d);
        CHECK(b.metadata == 2ULL * meta_bits(meta) * 30 * 3);
      }
    }
  }
  CHECK(contiguous_groups(10, 4) == ChannelGroups{{0, 1, 2, 3}, {4, 5, 6, 7}, {8, 9}});
}

TEST_CASE("channel clustering groups channels of similar range", "[skvq]") {
  // Channels 2 and 6 range over ±10, channel 4 over [0, 5], the rest ±1.
  std::vector<float> mn{-1, -1.1f, -10, -0.9f, 0, -1, -9.5f, -1}, mx{1, 0.9f, 10, 1.2f, 5, 1, 10, 1};
  const ChannelGroups g = cluster_channels(mn, mx, 3);
  CHECK(g == ChannelGroups{{0, 1, 3, 5, 7}, {4}, {2, 6}});
  // A k-means fixed point on random ranges: a partition, each channel nearest its own group's centre.
  Rng rng(5);
  std::vector<float> a(64), b(64);
  for (int c = 0; c < 64; ++c) {
    a[c] = float(-std::abs(rng.normal()) * (c % 7 == 0 ? 8 : 1));
    b[c] = float(std::abs(rng.normal()) * (c % 7 == 0 ? 8 : 1));
  }
  const ChannelGroups h = cluster_channels(a, b, 4);
  std::vector<int> seen(64, 0);
  std::vector<std::pair<double, double>> centre;
  for (const auto& grp : h) {
    double sx = 0, sy = 0;
    for (int c : grp) {
      ++seen[c];
      sx += a[c];
      sy += b[c];
    }
    centre.emplace_back(sx / double(grp.size()), sy / double(grp.size()));
  }
  CHECK(std::all_of(seen.begin(), seen.end(), [](int s) { return s == 1; }));
  for (std::size_t j = 0; j < h.size(); ++j)
    for (int c : h[j])
      for (const auto& [cx, cy] : centre) {
        const double own = std::pow(a[c] - centre[j].first, 2) + std::pow(b[c] - centre[j].second, 2);
        CHECK(own <= std::pow(a[c] - cx, 2) + std::pow(b[c] - cy, 2) + 1e-9);
      }
}

TEST_CASE("skvq matches the plain reference; bits closed form", "[skvq]") {
  const int d = 32, p = 60, total = 90;
  Rng rng(3);
  Matrix k = random_matrix(total, d, rng), v = random_matrix(total, d, rng);
  k.col(7) *= 6.0f;
  k.col(20) *= 6.0f;
  const RopeInfo rope{10000.0, RopeStyle::Neox};
  struct Case {
    int bits, group, window, sinks;
    bool reorder, pre_rope, fp8;
    double clip;
  };
  for (const Case cs : {Case{2, 8, 16, 5, true, true, true, 0.96}, Case{3, 16, 0, 0, false, false, false, 1.0},
                        Case{2, 8, 64, 3, true, false, false, 0.9}, Case{4, 32, 100, 2, true, true, true, 0.96}}) {
    INFO("bits " << cs.bits << " group " << cs.group << " window " << cs.window << " sinks " << cs.sinks << " reorder "
                 << cs.reorder << " pre_rope " << cs.pre_rope);
    const auto c = Registry::global().build(
        fmt::format("skvq:bits={},group={},window={},sinks={},reorder={},pre_rope={},meta={},clip={}", cs.bits,
                    cs.group, cs.window, cs.sinks, cs.reorder, cs.pre_rope, cs.fp8 ? "fp8" : "fp16", cs.clip));
    BlockContext ctx = test::block_context(d, total, p);
    ctx.rope = rope;
    std::vector<Matrix> keys{k}, values{v};
    ctx.calibration = c->calibrate(LayerView{keys, values, {}}, ctx);
    auto st = c->new_state(ctx);
    test::feed(*st, k, v, p, total);
    // Reference groups: per tensor, clusters of the prompt's (pre-RoPE) channel ranges.
    const int clusters = (d + cs.group - 1) / cs.group;
    auto groups_of = [&](Matrix x, bool is_key) {
      if (!cs.reorder) return contiguous_groups(d, cs.group);
      x = x.topRows(p).eval();
      if (is_key && cs.pre_rope) rope_rotate(x, rope, 0, true);
      std::vector<float> mn(d), mx(d);
      for (int j = 0; j < d; ++j) {
        mn[j] = x.col(j).minCoeff();
        mx[j] = x.col(j).maxCoeff();
      }
      return cluster_channels(mn, mx, clusters);
    };
    const int compressed = std::max(0, total - cs.window);
    std::uint64_t expect_bits = 0;
    for (int tensor = 0; tensor < 2; ++tensor) {
      const Matrix& x = tensor == 0 ? k : v;
      const ChannelGroups g = groups_of(x, tensor == 0);
      const bool undo = tensor == 0 && cs.pre_rope;
      Matrix expect = x;
      for (int t = cs.sinks; t < compressed; ++t) {
        Matrix row = x.row(t);
        if (undo) rope_rotate(row, rope, t, true);
        Matrix q(1, d);
        ref_clipped(row.data(), q.data(), g, cs.bits, float(cs.clip), cs.fp8);
        if (undo) rope_rotate(q, rope, t, false);
        expect.row(t) = q;
      }
      CHECK((tensor == 0 ? st->view().keys : st->view().values) == expect);
      const int quantized = std::max(0, compressed - cs.sinks);
      expect_bits += 16ULL * d * (total - quantized) +
                     std::uint64_t(quantized) * (cs.bits * d + 2 * (cs.fp8 ? 8 : 16) * g.size()) +
                     (cs.reorder && compressed > 0 ? std::uint64_t(d) * ceil_log2(int(g.size())) : 0);
    }
    CHECK(st->bits().total() == expect_bits);
  }
}

TEST_CASE("skvq: reordering lowers per-token error with outlier channels; clear errors", "[skvq]") {
  SynthOptions o;
  o.preset = "small";  // d = 64, RoPE neox; outlier channels scaled before RoPE
  o.outlier_channels = 2;
  o.outlier_scale = 8.0f;
  const SynthOptions r = resolve_synth_options(o);
  const LayerData layer = synth_layer(r, 1, 1);
  const DumpInfo info = synth_info(r);
  auto key_error = [&](const std::string& spec) {
    const auto c = Registry::global().build(spec);
    BlockContext base = test::block_context(r.head_dim, r.seq_len, r.prompt_len);
    base.layer = 1;
    base.rope = info.rope;
    base.calibration = c->calibrate(LayerView{layer.keys, layer.values, layer.queries}, base);
    double err = 0, ref = 0;
    for (int h = 0; h < r.num_kv_heads; ++h) {
      BlockContext ctx = base;
      ctx.kv_head = h;
      auto s = c->new_state(ctx);
      test::feed(*s, layer.keys[h], layer.values[h], r.prompt_len, r.seq_len);
      err += (s->view().keys - layer.keys[h]).squaredNorm();
      ref += layer.keys[h].squaredNorm();
    }
    return std::sqrt(err / ref);
  };
  const std::string base = "skvq:bits=2,group=16,window=0,sinks=0,clip=1,meta=fp16";
  const double reordered = key_error(base + ",reorder=true"), plain = key_error(base + ",reorder=false");
  INFO("reorder " << reordered << ", contiguous " << plain);
  CHECK(reordered < 0.8 * plain);

  CHECK_THROWS_WITH(Registry::global().build("skvq")->new_state(test::block_context(8, 4, 4)),
                    Catch::Contains("pre_rope=false"));
  CHECK(Registry::global().build("skvq:pre_rope=false")->new_state(test::block_context(8, 4, 4)) != nullptr);
  CHECK(Registry::global().build("skvq")->needs_rope());
  CHECK_FALSE(Registry::global().build("skvq:pre_rope=false")->needs_rope());
}
