#include "kvlab/compressors/stream_state.hpp"

namespace kvlab {

namespace {
SegmentContext base_context(const BlockContext& ctx) {
  SegmentContext s;
  s.seed = ctx.seed;
  s.layer = ctx.layer;
  s.kv_head = ctx.kv_head;
  return s;
}
}  // namespace

StreamCacheState::StreamCacheState(const BlockContext& ctx, StreamSpec keys, StreamSpec values)
    : recon_(ctx.max_tokens, ctx.head_dim),
      keys_(std::move(keys.codec), keys.policy, base_context(ctx), 0, ctx.head_dim),
      values_(std::move(values.codec), values.policy, base_context(ctx), 1, ctx.head_dim) {}

void StreamCacheState::prefill(ConstMatrixRef keys, ConstMatrixRef values, const QueryGroup&) {
  recon_.resize(static_cast<int>(keys.rows()));
  keys_.prefill(keys, recon_);
  values_.prefill(values, recon_);
}

void StreamCacheState::append(ConstRowRef key, ConstRowRef value, const QueryGroup&) {
  recon_.resize(recon_.size() + 1);
  keys_.append(key, recon_);
  values_.append(value, recon_);
}

void StreamCacheState::changes_since(int since, CacheChanges& out) const {
  out.clear();
  keys_.changes_since(since, out.keys);
  values_.changes_since(since, out.values);
}

void Fp16CacheState::prefill(ConstMatrixRef keys, ConstMatrixRef values, const QueryGroup&) {
  const int n = static_cast<int>(keys.rows());
  recon_.resize(n);
  recon_.keys_rows(0, n) = keys;
  recon_.values_rows(0, n) = values;
}

void Fp16CacheState::append(ConstRowRef key, ConstRowRef value, const QueryGroup&) {
  const int t = recon_.size();
  recon_.resize(t + 1);
  recon_.keys_rows(t, 1) = key;
  recon_.values_rows(t, 1) = value;
}

void Fp16CacheState::changes_since(int since, CacheChanges& out) const {
  KVLAB_ASSERT(since >= 0 && since <= size());
  out.clear();
  out.add(since, size());
}

BitCount Fp16CacheState::bits() const {
  BitCount b;
  b.fp16_buffer = fp16_baseline_bits(static_cast<std::uint64_t>(recon_.size()),
                                     static_cast<std::uint64_t>(recon_.head_dim()));
  return b;
}

}  // namespace kvlab
