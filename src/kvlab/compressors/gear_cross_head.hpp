#pragma once
// GEAR's released code chooses value outliers per token across all kv heads
// of a layer: the H·d entries of a token (heads side by side, head-major) are
// one vector, of which the k = ⌊H·d·s/2⌋ largest and k smallest are kept in
// FP16 — so one head may get several of a token's outliers and another none.
// kvlab's own rule is per head (k = ⌊d·s/2⌋ of a head's d entries, 0 at
// d = 64, s = 0.02). This is the released rule, used by gear with
// compat_outliers=true through a layer-scoped state (gear.cpp).
//
// Ties are broken by the total order (value, flat index j·d + c), so the
// selection is unique; 2k ≥ H·d keeps every entry.
#include <span>
#include <vector>

#include "kvlab/compressors/block_codec.hpp"
#include "kvlab/quant/group_quantizer.hpp"
#include "kvlab/quant/outliers.hpp"

namespace kvlab {

// k per side of the released code for H kv heads of head_dim d, sparsity s.
int released_outlier_count(int num_kv_heads, int head_dim, double sparsity);

// heads[j]: head j's value rows [n × d] (same n, d for every head). Returns
// one OutlierSet per head (mask [n × d], entries with FP16-rounded values).
std::vector<OutlierSet> select_outliers_across_heads(std::span<const ConstMatrixRef> heads, int k);

// One head's value segment, encoded as GearCodec does (D̂ with the outliers
// excluded from the group min/max, + S, + rank-r low-rank fit of the rest),
// but with outliers chosen for the whole layer beforehand (set_selection).
// One instance per layer state; not shared between threads.
class CrossHeadValueCodec : public BlockCodec {
 public:
  CrossHeadValueCodec(QuantConfig quant, int rank, int rank_decode, int loop)
      : quant_(quant), rank_(rank), rank_decode_(rank_decode), loop_(loop) {}

  // The selection for the next segment of every head (entry j: kv head j).
  void set_selection(std::vector<OutlierSet> per_head) const;
  // Throws (internal error) unless every head's selection was used.
  void check_used() const;

  BitCount encode(ConstMatrixRef x, MatrixRef out, const SegmentContext& ctx) const override;

 private:
  QuantConfig quant_;
  int rank_, rank_decode_, loop_;
  mutable std::vector<OutlierSet> selection_;
  mutable std::vector<bool> used_;
};

}  // namespace kvlab
