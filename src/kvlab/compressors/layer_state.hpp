#pragma once
// Feeding one layer's kv heads, whatever the compressor's scope: a
// layer-scoped compressor's own LayerCacheState, or one CacheState per head of
// a block-scoped compressor behind the same interface. The replay and the
// model in the loop feed caches only through this.
#include <memory>

#include "kvlab/compressors/compressor.hpp"

namespace kvlab {

// States for kv heads [first_head, first_head + count) of layer ctx.layer.
// Layer-scoped compressors need the whole layer (first_head = 0, count =
// ctx.num_kv_heads); block-scoped ones take any range, each head getting
// ctx with kv_head set.
std::unique_ptr<LayerCacheState> make_layer_state(const Compressor& compressor, const BlockContext& ctx,
                                                  int first_head, int count);

}  // namespace kvlab
