#pragma once
// One layer of a synthetic "tiny" dump and what a replay of it needs: the
// calibrated context of a compressor on that layer and the unit input of
// every kv head with its query group (what replay_dump builds for a layer).
#include <cstdint>
#include <span>

#include "kvlab/compressors/compressor.hpp"
#include "kvlab/io/synth.hpp"
#include "kvlab/replay/replay_block.hpp"

namespace kvlab::test {

struct SynthLayerFixture {
  DumpInfo info;
  LayerData layer;  // its tensors
  int index;        // its layer number

  SynthLayerFixture(int seq_len, int prompt_len, std::uint64_t seed, int layer_index = 1) : index(layer_index) {
    SynthOptions o;
    o.preset = "tiny";
    o.seq_len = seq_len;
    o.prompt_len = prompt_len;
    o.seed = seed;
    const SynthOptions opts = resolve_synth_options(o);
    info = synth_info(opts);
    layer = synth_layer(opts, index, 1);
  }

  // The replay's context for `c` on this layer, calibrated on it.
  BlockContext context(const Compressor& c, std::uint64_t seed = 0, const AttentionRule& rule = {}) const {
    BlockContext ctx;
    ctx.layer = index;
    ctx.num_layers = info.num_layers;
    ctx.num_kv_heads = info.num_kv_heads;
    ctx.head_dim = info.head_dim;
    ctx.group_size = info.group_size();
    ctx.prompt_len = info.prompt_len;
    ctx.max_tokens = info.seq_len;
    ctx.seed = seed;
    ctx.rope = info.rope;
    ctx.attention = rule;
    ctx.calibration = c.calibrate(LayerView{layer.keys, layer.values, layer.queries}, ctx);
    return ctx;
  }

  // Every kv head of the layer, head h with query heads h·g … h·g + g − 1.
  UnitInput unit(const AttentionRule& rule = {}) const {
    const int g = info.group_size();
    UnitInput in;
    in.layer = index;
    in.prompt_len = info.prompt_len;
    in.decode_steps = info.seq_len - info.prompt_len;
    in.attention = rule;
    for (int h = 0; h < info.num_kv_heads; ++h)
      in.heads.push_back(HeadInput{layer.keys[static_cast<std::size_t>(h)], layer.values[static_cast<std::size_t>(h)],
                                   std::span<const Matrix>(layer.queries)
                                       .subspan(static_cast<std::size_t>(h * g), static_cast<std::size_t>(g))});
    return in;
  }
};

}  // namespace kvlab::test
