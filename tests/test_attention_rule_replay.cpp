// The replay with a layer's attention rule (scale, soft-cap, sliding window):
// the incremental per-step metrics (chunked reference, deferred outputs of
// frozen blocks) give exactly the numbers of a full recomputation at every
// step, as they do without a rule; and the rule does change the numbers.
#include <catch2/catch.hpp>

#include <cmath>
#include <string>

#include "kvlab/compressors/layer_state.hpp"
#include "kvlab/compressors/registry.hpp"
#include "kvlab/io/synth.hpp"
#include "kvlab/replay/replay_block.hpp"
#include "synth_layer_fixture.hpp"
#include "test_support.hpp"

using namespace kvlab;

namespace {

const test::SynthLayerFixture& layer() {
  static const test::SynthLayerFixture l(256, 96, 5);
  return l;
}

std::vector<BlockResult> replay(const Compressor& c, const AttentionRule& rule, bool incremental) {
  const test::SynthLayerFixture& l = layer();
  const BlockContext ctx = l.context(c, 0, rule);
  const UnitInput in = l.unit(rule);
  const auto state = make_layer_state(c, ctx, 0, l.info.num_kv_heads);
  LayerCacheState* states[] = {state.get()};
  std::vector<UnitResult> r = replay_units(states, in, evaluation_steps(in.decode_steps, 3), UnitSettings{true, incremental});
  REQUIRE(r.front().error.empty());
  return std::move(r.front().blocks);
}

}  // namespace

TEST_CASE("attention rule: incremental metrics equal a full recomputation, and the rule matters",
          "[incremental][attention_rule]") {
  const AttentionRule rule{0.11, 3.0, 40};
  // Quantizers with frozen segments (the deferred outputs), droppers, QJL's estimator.
  for (const std::string spec : {"kivi:residual=32", "gear:buffer=32,group=32", "h2o-20pct", "snapkv:capacity=48",
                                 "tova-20pct", "qjl-256", "kvquant-nuq3-1pct", "streaming-20pct"}) {
    INFO(spec);
    const auto c = Registry::global().build(spec);
    const auto inc = replay(*c, rule, true), full = replay(*c, rule, false);
    const auto plain = replay(*c, AttentionRule{}, true);
    REQUIRE(inc.size() == full.size());
    bool differs = false;
    for (std::size_t h = 0; h < inc.size(); ++h) {
      REQUIRE(inc[h].steps.size() == full[h].steps.size());
      for (std::size_t s = 0; s < inc[h].steps.size(); ++s) {
        const AttentionError &a = inc[h].steps[s].attn, &b = full[h].steps[s].attn;
        INFO("head " << h << " step " << inc[h].steps[s].decode_step);
        REQUIRE(a.out_rel == b.out_rel);
        REQUIRE(a.kl == b.kl);
        REQUIRE(a.kl_rev == b.kl_rev);
        REQUIRE(a.dropped_mass == b.dropped_mass);
        REQUIRE(std::isfinite(a.kl));
        differs = differs || a.out_rel != plain[h].steps[s].attn.out_rel;
      }
    }
    CHECK(differs);
  }
}
