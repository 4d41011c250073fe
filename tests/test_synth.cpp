// Synthetic dumps: determinism, presets, and the measurable effect of each knob.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "kvlab/core/error.hpp"
#include "kvlab/core/fp16.hpp"
#include "kvlab/io/dump_reader.hpp"
#include "kvlab/io/dump_stats.hpp"
#include "kvlab/io/synth.hpp"

using namespace kvlab;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

SynthOptions tiny(std::uint64_t seed = 7) {
  SynthOptions o;
  o.preset = "tiny";
  o.seed = seed;
  return resolve_synth_options(o);
}

bool same(const LayerData& a, const LayerData& b) {
  if (a.keys.size() != b.keys.size() || a.queries.size() != b.queries.size()) return false;
  for (std::size_t h = 0; h < a.keys.size(); ++h)
    if (a.keys[h] != b.keys[h] || a.values[h] != b.values[h]) return false;
  for (std::size_t h = 0; h < a.queries.size(); ++h)
    if (a.queries[h] != b.queries[h]) return false;
  return true;
}

// Mean softmax(q·K[0..t]ᵀ/√d) weight of position 0, and mean max weight over
// positions >= 1, over decode positions t >= prompt_len and all query heads.
struct AttentionShares {
  double sink = 0, peak = 0;
};
AttentionShares attention_shares(const SynthOptions& o, const LayerData& data) {
  const int group = o.num_heads / o.num_kv_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(o.head_dim));
  AttentionShares s;
  int count = 0;
  for (int h = 0; h < o.num_heads; ++h) {
    const Matrix& K = data.keys[static_cast<std::size_t>(h / group)];
    const Matrix& Q = data.queries[static_cast<std::size_t>(h)];
    for (int t = o.prompt_len; t < o.seq_len; ++t) {
      Eigen::VectorXf logits = (K.topRows(t + 1) * Q.row(t).transpose()) * scale;
      logits.array() -= logits.maxCoeff();
      Eigen::VectorXf w = logits.array().exp();
      w /= w.sum();
      s.sink += w(0);
      s.peak += w.tail(t).maxCoeff();
      ++count;
    }
  }
  s.sink /= count;
  s.peak /= count;
  return s;
}

}  // namespace

TEST_CASE("synth presets and overrides", "[synth]") {
  SynthOptions o;
  o.preset = "llama3-8b";
  const SynthOptions r = resolve_synth_options(o);
  CHECK(r.num_layers == 32);
  CHECK(r.num_heads == 32);
  CHECK(r.num_kv_heads == 8);
  CHECK(r.head_dim == 128);
  CHECK(r.seq_len == 4096);
  CHECK(r.prompt_len == 2048);
  CHECK(r.rope_theta == 500000.0);
  CHECK(r.outlier_channels == 4);

  o.preset = "small";
  o.num_layers = 3;
  o.seq_len = 100;
  const SynthOptions s = resolve_synth_options(o);
  CHECK(s.num_layers == 3);
  CHECK(s.num_heads == 8);
  CHECK(s.num_kv_heads == 2);
  CHECK(s.head_dim == 64);
  CHECK(s.seq_len == 100);
  CHECK(s.prompt_len == 50);  // the preset's 384 capped at tokens/2

  o = SynthOptions{};
  o.preset = "gpt5";
  REQUIRE_THROWS_WITH(resolve_synth_options(o), Contains("unknown preset 'gpt5'") && Contains("llama2-7b"));
  o = SynthOptions{};
  o.num_heads = 6;
  o.num_kv_heads = 4;
  REQUIRE_THROWS_WITH(resolve_synth_options(o), Contains("--heads (6)") && Contains("--kv-heads (4)"));
  o = SynthOptions{};
  o.lowrank_share = 1.5f;
  REQUIRE_THROWS_WITH(resolve_synth_options(o), Contains("--lowrank-share"));
  o = SynthOptions{};
  o.attn_logit_softcap = -1;
  REQUIRE_THROWS_WITH(resolve_synth_options(o), Contains("--softcap"));
  o = SynthOptions{};
  o.window_layers = {1};
  REQUIRE_THROWS_WITH(resolve_synth_options(o), Contains("--window-layers needs --sliding-window"));
  o.sliding_window = 16;
  o.window_layers = {0, 2};  // tiny has layers 0 and 1
  REQUIRE_THROWS_WITH(resolve_synth_options(o), Contains("layer 2 is out of range"));
}

TEST_CASE("synth is deterministic in the seed and independent of the thread count", "[synth]") {
  const SynthOptions o = tiny(11);
  const LayerData a = synth_layer(o, 1, 1);
  const LayerData b = synth_layer(o, 1, 2);
  const LayerData c = synth_layer(o, 1, 3);
  const LayerData again = synth_layer(o, 1);
  CHECK(same(a, b));
  CHECK(same(a, c));
  CHECK(same(a, again));
  REQUIRE(a.keys.size() == 2);
  REQUIRE(a.queries.size() == 4);
  CHECK(a.keys[0].rows() == 256);
  CHECK(a.keys[0].cols() == 32);
  CHECK(a.keys[0].allFinite());
  CHECK(a.queries[3].allFinite());
  CHECK_FALSE(same(a, synth_layer(tiny(12), 1)));
  CHECK_FALSE(same(a, synth_layer(o, 0)));
  CHECK(synth_tokens(o) == synth_tokens(o));
}

TEST_CASE("synth dump on disk equals the generated layers rounded to FP16", "[synth][io]") {
  std::string dir_pattern = (fs::temp_directory_path() / "kvlab_synth_XXXXXX").string();
  REQUIRE(mkdtemp(dir_pattern.data()) != nullptr);
  const fs::path dir = dir_pattern;
  const std::string path = (dir / "tiny.h5").string();
  SynthOptions opts;
  opts.seed = 3;
  const SynthResult result = write_synth_dump(path, opts, 2);
  CHECK(result.bytes == fs::file_size(path));
  const SynthOptions o = resolve_synth_options(opts);
  const DumpReader reader(path);
  CHECK(reader.info().num_layers == 2);
  CHECK(reader.info().dtype == "float16");
  CHECK(reader.info().has_queries);
  CHECK(reader.info().has_tokens);
  REQUIRE(reader.info().rope.has_value());
  CHECK(reader.info().rope->style == RopeStyle::Neox);
  CHECK(reader.read_tokens() == synth_tokens(o));
  for (int l = 0; l < 2; ++l) {
    const LayerData disk = reader.read_layer(l);
    const LayerData mem = synth_layer(o, l);
    auto fp16 = [](const Matrix& m) { return Matrix(m.unaryExpr([](float x) { return round_to_fp16(x); })); };
    for (std::size_t h = 0; h < mem.keys.size(); ++h) {
      CHECK(disk.keys[h] == fp16(mem.keys[h]));
      CHECK(disk.values[h] == fp16(mem.values[h]));
    }
    for (std::size_t h = 0; h < mem.queries.size(); ++h) CHECK(disk.queries[h] == fp16(mem.queries[h]));
  }
  fs::remove_all(dir);
}

TEST_CASE("synth writes the attention description it is given", "[synth][io]") {
  std::string dir_pattern = (fs::temp_directory_path() / "kvlab_synth_XXXXXX").string();
  REQUIRE(mkdtemp(dir_pattern.data()) != nullptr);
  const fs::path dir = dir_pattern;
  SynthOptions opts;
  opts.attn_scale = 0.0625;
  opts.attn_logit_softcap = 50.0;
  opts.sliding_window = 32;
  opts.window_layers = {1};
  const std::string path = (dir / "capped.h5").string();
  write_synth_dump(path, opts, 1);
  const DumpInfo info = DumpReader(path).info();
  CHECK(info.describes_attention());
  CHECK(info.attention(0).scale == 0.0625);
  CHECK(info.attention(1).softcap == 50.0);
  CHECK(info.attention(0).window == 0);
  CHECK(info.attention(1).window == 32);
  // The tensors do not depend on the description.
  const std::string plain = (dir / "plain.h5").string();
  write_synth_dump(plain, SynthOptions{}, 1);
  CHECK(DumpReader(plain).read_layer(1).keys[0] == DumpReader(path).read_layer(1).keys[0]);
  CHECK_FALSE(DumpReader(plain).info().describes_attention());
  fs::remove_all(dir);
}

TEST_CASE("synth knobs have their measurable effect", "[synth]") {
  SECTION("outlier channels raise the key outlier ratio") {
    SynthOptions o = tiny();
    o.outlier_scale = 1.0f;
    const double plain = layer_stats(synth_layer(o, 0)).key_outlier_ratio;
    o.outlier_scale = 10.0f;
    const double strong = layer_stats(synth_layer(o, 0)).key_outlier_ratio;
    o.rope = false;
    const MatrixStats no_rope = matrix_stats(synth_layer(o, 0).keys[1]);
    CHECK(plain < 2.0);
    CHECK(strong > 2.5 * plain);
    CHECK(no_rope.outlier_ratio > 7.0);  // without RoPE mixing, ≈ outlier_scale
    // Values are never given outliers.
    CHECK(layer_stats(synth_layer(o, 0)).value_outlier_ratio < 1.5);
  }
  SECTION("lowrank_share concentrates key energy in the top singular values") {
    SynthOptions o = tiny();
    o.rope = false;
    o.outlier_scale = 1.0f;
    o.sink = false;
    const int rank = o.head_dim / 16;
    o.lowrank_share = 0.1f;
    const double low = top_energy_fraction(synth_layer(o, 0).keys[0], rank);
    o.lowrank_share = 0.9f;
    const double high = top_energy_fraction(synth_layer(o, 0).keys[0], rank);
    CHECK(low < 0.35);
    CHECK(high > 0.85);
    CHECK(layer_stats(synth_layer(o, 0)).key_rank90 < 10);
  }
  SECTION("the sink token draws a large share of attention") {
    SynthOptions o = tiny();
    const AttentionShares with_sink = attention_shares(o, synth_layer(o, 1));
    o.sink = false;
    const AttentionShares no_sink = attention_shares(o, synth_layer(o, 1));
    CHECK(with_sink.sink > 0.3);
    CHECK(no_sink.sink < 0.05);
  }
  SECTION("query peakiness sharpens attention on the target keys") {
    SynthOptions o = tiny();
    o.sink = false;
    o.query_peakiness = 0.0f;
    const double flat = attention_shares(o, synth_layer(o, 0)).peak;
    o.query_peakiness = 8.0f;
    const double peaky = attention_shares(o, synth_layer(o, 0)).peak;
    CHECK(flat < 0.1);
    CHECK(peaky > 0.4);
  }
  SECTION("RoPE rotates the same pre-RoPE keys") {
    SynthOptions o = tiny();
    o.float16 = false;
    for (const RopeStyle style : {RopeStyle::Neox, RopeStyle::Gptj}) {
      o.rope = true;
      o.rope_style = style;
      o.rope_theta = 10000.0;
      const LayerData rotated = synth_layer(o, 0, 1);
      CHECK(synth_info(o).rope.has_value());
      o.rope = false;
      CHECK_FALSE(synth_info(o).rope.has_value());
      const LayerData plain = synth_layer(o, 0, 1);
      const Matrix& K = rotated.keys[1];
      CHECK(K.row(0) == plain.keys[1].row(0));  // position 0 is not rotated
      CHECK((K.bottomRows(200) - plain.keys[1].bottomRows(200)).norm() > 0.1 * K.bottomRows(200).norm());
      CHECK(K.rowwise().norm().isApprox(plain.keys[1].rowwise().norm(), 1e-4f));
      Matrix back = K;
      apply_rope(back, 10000.0, style, 0, /*inverse=*/true);
      CHECK(back.isApprox(plain.keys[1], 1e-4f));
      CHECK(rotated.values[0] == plain.values[0]);
    }
  }
}
