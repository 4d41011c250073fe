// One generic suite stamped out for every registered method and preset:
// shapes and present-mask consistent with the tokens fed, bit breakdown
// consistent, deterministic for a seed, and more bits never worse.
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>

#include "kvlab/compressors/registry.hpp"
#include "kvlab/io/synth.hpp"
#include "kvlab/replay/replay_block.hpp"

using namespace kvlab;

namespace {

struct Fixture {
  SynthOptions opts;
  DumpInfo info;
  LayerData layer;
  Fixture() {
    SynthOptions o;
    o.preset = "tiny";
    o.seq_len = 192;
    o.prompt_len = 96;
    o.seed = 5;
    opts = resolve_synth_options(o);
    info = synth_info(opts);
    layer = synth_layer(opts, 1, 1);
  }
};

const Fixture& fixture() {
  static const Fixture f;
  return f;
}

std::vector<BlockResult> replay_all_heads(const Compressor& c, std::uint64_t seed = 0) {
  const Fixture& f = fixture();
  BlockContext base;
  base.layer = 1;
  base.num_layers = f.info.num_layers;
  base.num_kv_heads = f.info.num_kv_heads;
  base.head_dim = f.info.head_dim;
  base.group_size = f.info.group_size();
  base.prompt_len = f.info.prompt_len;
  base.max_tokens = f.info.seq_len;
  base.seed = seed;
  base.rope = f.info.rope;
  base.calibration = c.calibrate(LayerView{f.layer.keys, f.layer.values, f.layer.queries}, base);
  const int g = f.info.group_size();
  const std::vector<int> steps = evaluation_steps(f.info.seq_len - f.info.prompt_len, 16);
  std::vector<BlockResult> out;
  for (int h = 0; h < f.info.num_kv_heads; ++h) {
    BlockContext ctx = base;
    ctx.kv_head = h;
    const BlockInput in{f.layer.keys[h], f.layer.values[h], std::span<const Matrix>(f.layer.queries).subspan(h * g, g),
                        f.info.prompt_len, f.info.seq_len - f.info.prompt_len};
    out.push_back(replay_block(c, ctx, in, steps, true));
  }
  return out;
}

std::vector<std::string> every_spec() {
  std::vector<std::string> specs;
  for (const auto& m : Registry::global().methods()) specs.push_back(m.name);
  for (const auto& p : Registry::global().presets()) specs.push_back(p.name);
  return specs;
}

double attention_error(const std::vector<BlockResult>& blocks) {
  double sum = 0;
  int n = 0;
  for (const auto& b : blocks) {
    sum += b.attn.out_rel;
    n += b.attn_evals;
  }
  return sum / n;
}

}  // namespace

TEST_CASE("contract: every method replays a block consistently", "[contract]") {
  const Fixture& f = fixture();
  for (const std::string& spec : every_spec()) {
    INFO("spec " << spec);
    const auto c = Registry::global().build(spec);
    const auto blocks = replay_all_heads(*c);
    for (const BlockResult& b : blocks) {
      CHECK(b.tokens == f.info.seq_len);
      REQUIRE(!b.steps.empty());
      CHECK(b.steps.front().tokens == f.info.prompt_len);
      CHECK(b.bits.total() > 0);
      CHECK(b.bits.total() == b.bits.codes + b.bits.metadata + b.bits.sparse + b.bits.lowrank +
                                  b.bits.fp16_buffer + b.bits.index);
      CHECK(b.steps.back().bits == b.bits.total());
      CHECK(std::isfinite(b.values.rel()));
      CHECK(b.attn_evals == static_cast<int>(b.steps.size()) * f.info.group_size());
      CHECK(std::isfinite(b.attn.out_rel));
    }
  }
}

TEST_CASE("contract: the view has one row per token fed and zero rows where absent", "[contract]") {
  const Fixture& f = fixture();
  const int d = f.info.head_dim, p = f.info.prompt_len;
  for (const std::string& spec : every_spec()) {
    INFO("spec " << spec);
    const auto c = Registry::global().build(spec);
    BlockContext ctx;
    ctx.head_dim = d;
    ctx.num_layers = f.info.num_layers;
    ctx.num_kv_heads = f.info.num_kv_heads;
    ctx.group_size = f.info.group_size();
    ctx.prompt_len = p;
    ctx.max_tokens = f.info.seq_len;
    ctx.rope = f.info.rope;
    ctx.calibration = c->calibrate(LayerView{f.layer.keys, f.layer.values, f.layer.queries}, ctx);
    auto state = c->new_state(ctx);
    const int g = f.info.group_size();
    QueryGroup q;
    for (int j = 0; j < g; ++j) q.emplace_back(f.layer.queries[j].topRows(p));
    state->prefill(f.layer.keys[0].topRows(p), f.layer.values[0].topRows(p), q);
    for (int t = p; t < f.info.seq_len; ++t) {
      QueryGroup qt;
      for (int j = 0; j < g; ++j) qt.emplace_back(f.layer.queries[j].middleRows(t, 1));
      state->append(f.layer.keys[0].row(t), f.layer.values[0].row(t), qt);
      const CacheView v = state->view();
      REQUIRE(state->size() == t + 1);
      REQUIRE(v.tokens() == t + 1);
      REQUIRE(v.values.cols() == d);
      CHECK(v.is_present(t));  // the newest token is always in the cache
      if (v.present)
        for (int i = 0; i <= t; ++i)
          if (!v.is_present(i)) CHECK(v.values.row(i).isZero(0));
    }
  }
}

TEST_CASE("contract: identical seed gives identical results", "[contract]") {
  for (const std::string& spec : every_spec()) {
    INFO("spec " << spec);
    const auto c = Registry::global().build(spec);
    const auto a = replay_all_heads(*c, 42), b = replay_all_heads(*c, 42);
    for (std::size_t i = 0; i < a.size(); ++i) {
      CHECK(a[i].bits == b[i].bits);
      CHECK(a[i].values.sq_err == b[i].values.sq_err);
      CHECK(a[i].attn.out_rel == b[i].attn.out_rel);
      CHECK(a[i].attn.kl == b[i].attn.kl);
    }
  }
}

TEST_CASE("contract: more bits never give larger error", "[contract]") {
  for (const auto& m : Registry::global().methods()) {
    const bool has_bits = std::any_of(m.params.begin(), m.params.end(), [](const ParamSpec& p) {
      return p.name == "bits" && p.max >= 4;
    });
    if (!has_bits) continue;
    INFO("method " << m.name);
    double prev_v = INFINITY, prev_attn = INFINITY;
    for (int bits : {2, 3, 4}) {
      const auto c = Registry::global().build(fmt::format("{}:bits={}", m.name, bits));
      const auto blocks = replay_all_heads(*c);
      TensorError v;
      for (const auto& b : blocks) v += b.values;
      CHECK(v.rel() < prev_v);
      CHECK(attention_error(blocks) < prev_attn);
      prev_v = v.rel();
      prev_attn = attention_error(blocks);
    }
  }
}

TEST_CASE("contract: fp16 is exact and its size is the baseline", "[contract]") {
  const auto c = Registry::global().build("fp16");
  for (const BlockResult& b : replay_all_heads(*c)) {
    CHECK(b.keys.sq_err == 0.0);
    CHECK(b.values.sq_err == 0.0);
    CHECK(b.attn.out_rel == 0.0);
    CHECK(b.attn.kl == 0.0);
    CHECK(b.bits.total() == fp16_baseline_bits(b.tokens, b.head_dim));
  }
}
