#include "kvlab/compressors/gear_cross_head.hpp"

#include <algorithm>
#include <bit>
#include <cstdint>
#include <numeric>

#include "kvlab/compressors/gear_codec.hpp"
#include "kvlab/core/error.hpp"
#include "kvlab/core/fp16.hpp"
#include "kvlab/core/rng.hpp"
#include "kvlab/quant/lowrank.hpp"

namespace kvlab {

int released_outlier_count(int num_kv_heads, int head_dim, double sparsity) {
  // The released code: int(int(H·T·d·s) / T / 2), which equals ⌊H·d·s/2⌋ for
  // every T; the epsilon keeps an exact product (e.g. 2·64·1/32/2) from
  // rounding down.
  return static_cast<int>(static_cast<double>(num_kv_heads) * head_dim * sparsity / 2.0 + 1e-9);
}

std::vector<OutlierSet> select_outliers_across_heads(std::span<const ConstMatrixRef> heads, int k) {
  const int H = static_cast<int>(heads.size());
  KVLAB_ASSERT(H >= 1 && k >= 0);
  const int n = static_cast<int>(heads[0].rows()), d = static_cast<int>(heads[0].cols());
  std::vector<OutlierSet> out(static_cast<std::size_t>(H));
  for (int j = 0; j < H; ++j) {
    KVLAB_ASSERT(heads[static_cast<std::size_t>(j)].rows() == n && heads[static_cast<std::size_t>(j)].cols() == d);
    out[static_cast<std::size_t>(j)].mask = ElementMask::Zero(n, d);
  }
  const int m = H * d;
  std::vector<int> order(static_cast<std::size_t>(m));
  std::vector<float> row(static_cast<std::size_t>(m));
  for (int t = 0; t < n; ++t) {
    for (int j = 0; j < H; ++j)
      for (int c = 0; c < d; ++c) row[static_cast<std::size_t>(j * d + c)] = heads[static_cast<std::size_t>(j)](t, c);
    std::iota(order.begin(), order.end(), 0);
    // Ascending by (value, flat index): the k first are the smallest, the k last the largest.
    std::sort(order.begin(), order.end(), [&](int a, int b) {
      const float x = row[static_cast<std::size_t>(a)], y = row[static_cast<std::size_t>(b)];
      return x < y || (x == y && a < b);
    });
    std::vector<int> kept;
    if (2 * k >= m) {
      kept = order;
    } else {
      kept.assign(order.begin(), order.begin() + k);
      kept.insert(kept.end(), order.end() - k, order.end());
    }
    std::sort(kept.begin(), kept.end());  // row-major within the token
    for (int f : kept) {
      const int j = f / d, c = f % d;
      OutlierSet& s = out[static_cast<std::size_t>(j)];
      s.mask(t, c) = 1;
      s.entries.push_back({t, c, round_to_fp16(row[static_cast<std::size_t>(f)])});
    }
  }
  return out;
}

void CrossHeadValueCodec::set_selection(std::vector<OutlierSet> per_head) const {
  selection_ = std::move(per_head);
  used_.assign(selection_.size(), false);
}

void CrossHeadValueCodec::check_used() const {
  KVLAB_ASSERT(std::all_of(used_.begin(), used_.end(), [](bool u) { return u; }));
}

BitCount CrossHeadValueCodec::encode(ConstMatrixRef x, MatrixRef out, const SegmentContext& ctx) const {
  const int n = static_cast<int>(x.rows()), d = static_cast<int>(x.cols());
  const auto j = static_cast<std::size_t>(ctx.kv_head);
  // The layer state chose this segment's outliers from exactly these rows.
  KVLAB_ASSERT(j < selection_.size() && !used_[j] && selection_[j].mask.rows() == n && selection_[j].mask.cols() == d);
  const OutlierSet& s = selection_[j];
  used_[j] = true;
  const int rank = ctx.prefill ? rank_ : rank_decode_;
  const bool lowrank = rank > 0 && lowrank_effective_rank(n, d, rank) > 0;
  BitCount bits;
  Matrix residual;
  if (lowrank) {
    // quantize_with_residual writes x's own values, rounded to FP16, at the
    // masked positions: exactly the entries, chosen from these rows.
    KVLAB_ASSERT(std::all_of(s.entries.begin(), s.entries.end(),
                             [&](const SparseEntry& e) {
                               return std::bit_cast<std::uint32_t>(e.value) ==
                                      std::bit_cast<std::uint32_t>(round_to_fp16(x(e.row, e.col)));
                             }));
    bits = quantize_with_residual(x, quant_, out, residual, &s.mask);
  } else {
    bits = fake_quantize(x, quant_, out, &s.mask);
    add_outliers(s, out);
  }
  bits.sparse = s.bits();
  if (lowrank) {
    Rng rng = Rng::for_block(ctx.seed, ctx.layer, ctx.kv_head, GearCodec::rng_purpose(ctx.tensor, ctx.segment_index));
    add_lowrank(power_iteration(residual, rank, loop_, rng), out);
    bits.lowrank = lowrank_bits(n, d, rank);
  }
  return bits;
}

}  // namespace kvlab
