#include "kvlab/compressors/layer_state.hpp"

#include <vector>

#include "kvlab/core/error.hpp"

namespace kvlab {

namespace {

// Block-scoped compressors: independent states side by side.
class BlockStates : public LayerCacheState {
 public:
  BlockStates(const Compressor& compressor, const BlockContext& ctx, int first_head, int count) {
    states_.reserve(static_cast<std::size_t>(count));
    for (int h = 0; h < count; ++h) {
      BlockContext c = ctx;
      c.kv_head = first_head + h;
      states_.push_back(compressor.new_state(c));
    }
  }
  int heads() const override { return static_cast<int>(states_.size()); }
  void prefill(std::span<const ConstMatrixRef> keys, std::span<const ConstMatrixRef> values,
               std::span<const QueryGroup> queries) override {
    for (std::size_t h = 0; h < states_.size(); ++h) states_[h]->prefill(keys[h], values[h], queries[h]);
  }
  void append(std::span<const ConstRowRef> keys, std::span<const ConstRowRef> values,
              std::span<const QueryGroup> queries) override {
    for (std::size_t h = 0; h < states_.size(); ++h) states_[h]->append(keys[h], values[h], queries[h]);
  }
  const CacheReader& head(int h) const override { return *states_[static_cast<std::size_t>(h)]; }

 private:
  std::vector<std::unique_ptr<CacheState>> states_;
};

}  // namespace

std::unique_ptr<LayerCacheState> make_layer_state(const Compressor& compressor, const BlockContext& ctx,
                                                  int first_head, int count) {
  KVLAB_ASSERT(count >= 1 && first_head >= 0 && first_head + count <= ctx.num_kv_heads);
  if (compressor.scope() == Compressor::Scope::Block)
    return std::make_unique<BlockStates>(compressor, ctx, first_head, count);
  KVLAB_ASSERT(first_head == 0 && count == ctx.num_kv_heads);
  std::unique_ptr<LayerCacheState> state = compressor.new_layer_state(ctx);
  KVLAB_ASSERT(state->heads() == count);
  return state;
}

}  // namespace kvlab
