#include "kvlab/replay/block_meter.hpp"

#include <algorithm>

#include "kvlab/core/error.hpp"
#include "kvlab/metrics/attention_kernels.hpp"

namespace kvlab {

void BlockMeter::start_chunk(const CacheReader& state, const CacheView& view, const StepReference& ref) {
  const ReferenceChunk& chunk = *ref.chunk;
  const int rows = chunk.steps() * chunk.group();
  chunk_id_ = ref.chunk_id;
  chunk_tokens_ = view.tokens();
  width_ = chunk.position(chunk.steps() - 1) + 1;
  const std::size_t size = static_cast<std::size_t>(rows) * static_cast<std::size_t>(width_);
  if (state.keys_reconstructible()) {  // every query of the chunk over every row held now
    hat_.resize(size);
    dot_logits(chunk.queries().data(), rows, chunk.queries().outerStride(), view.keys.data(),
               view.tokens(), view.keys.outerStride(), static_cast<int>(view.keys.cols()), hat_.data(), width_);
  }
  frozen_blocks_ = std::min(state.frozen_rows(), view.tokens()) / kWeightedRowBlock;
  deferred_ = frozen_blocks_ > 0;
  if (deferred_) {
    p_hat_.resize(size);
    tail_.resize(static_cast<std::size_t>(rows));
  }
}

const float* BlockMeter::hat_logits(const CacheReader& state, const CacheView& view, const StepReference& ref,
                                    bool incremental, std::size_t& stride) {
  const ReferenceChunk& chunk = *ref.chunk;
  const int g = chunk.group(), t = view.tokens(), d = static_cast<int>(view.keys.cols());
  const float* q = chunk.queries().row(ref.step * g).data();
  const std::ptrdiff_t ldq = chunk.queries().outerStride();
  stride = static_cast<std::size_t>(t);
  if (!state.keys_reconstructible()) {  // the state's own estimator (QJL)
    estimated_.resize(g, t);
    state.key_logits(chunk.queries().middleRows(ref.step * g, g), estimated_);
    return estimated_.data();
  }
  const float* keys = view.keys.data();
  const std::ptrdiff_t ldk = view.keys.outerStride();
  if (!incremental) {
    hat_.resize(static_cast<std::size_t>(g) * stride);
    dot_logits(q, g, ldq, keys, t, ldk, d, hat_.data(), t);
    return hat_.data();
  }
  stride = static_cast<std::size_t>(width_);
  float* out = hat_.data() + static_cast<std::size_t>(ref.step * g) * stride;
  if (ref.step > 0) {  // the first step's rows are all fresh; later, the rows written since it
    state.changes_since(chunk_tokens_, changes_);
    for (const RowRange& r : changes_.keys)
      dot_logits(q, g, ldq, keys + r.begin * ldk, r.size(), ldk, d, out + r.begin, width_);
  }
  return out;
}

StepPoint BlockMeter::measure(const CacheReader& state, const HeadInput& in, int decode_step, const StepReference& ref,
                              bool incremental) {
  const CacheView view = state.view();
  const int t = view.tokens();
  StepPoint s;
  s.decode_step = decode_step;
  s.position = t - 1;
  s.tokens = t;
  s.bits = state.bits().total();
  const bool keys = state.keys_reconstructible();
  if (incremental) {
    state.changes_since(measured_tokens_, changes_);
    if (keys) keys_.update(in.keys, view.keys, changes_.keys);
    values_.update(in.values, view.values, changes_.values);
    s.keys = keys ? keys_.total(t) : undefined_tensor_error();
    s.values = values_.total(t);
  } else {
    s.keys = keys ? tensor_error(in.keys.topRows(t), view.keys) : undefined_tensor_error();
    s.values = tensor_error(in.values.topRows(t), view.values);
  }
  measured_tokens_ = t;
  if (ref.chunk == nullptr) return s;

  const ReferenceChunk& chunk = *ref.chunk;
  KVLAB_ASSERT(chunk.position(ref.step) == t - 1);
  if (incremental && ref.chunk_id != chunk_id_) start_chunk(state, view, ref);
  const int g = chunk.group(), d = static_cast<int>(view.values.cols());
  std::size_t stride = 0;
  const float* hat = hat_logits(state, view, ref, incremental, stride);
  const std::uint8_t* present = view.present ? view.present->data() : nullptr;
  for (int j = 0; j < g; ++j) {
    const ReferenceAttention r = chunk.at(ref.step, j);
    if (!incremental || !deferred_) {
      s.attn += compare_attention(r, hat + j * stride, view.values, present, chunk.scale(), scratch_);
      continue;
    }
    // ô later: p̂ kept for finish_chunk, the sums of blocks not frozen taken now.
    const std::size_t row = static_cast<std::size_t>(ref.step * g + j);
    double* p_hat = p_hat_.data() + row * static_cast<std::size_t>(width_);
    s.attn += compare_scores(r, hat + j * stride, present, chunk.scale(), p_hat, scratch_.capped);
    std::vector<double>& tail = tail_[row];
    tail.clear();
    for (int b = frozen_blocks_ * kWeightedRowBlock; b < t; b += kWeightedRowBlock) {
      const std::size_t at = tail.size();
      tail.resize(at + static_cast<std::size_t>(d), 0.0);
      add_weighted_rows(p_hat + b, 1, 0, view.values.row(b).data(), std::min(kWeightedRowBlock, t - b),
                        view.values.outerStride(), d, tail.data() + at, 0);
    }
  }
  s.heads = g;
  return s;
}

void BlockMeter::finish_chunk(const CacheReader& state, const ReferenceChunk& chunk, std::span<StepPoint> steps) {
  if (!deferred_ || chunk_id_ < 0) return;
  const int g = chunk.group(), rows = chunk.steps() * g;
  KVLAB_ASSERT(static_cast<int>(steps.size()) == chunk.steps());
  const CacheView view = state.view();
  const int d = static_cast<int>(view.values.cols());
  const auto w = static_cast<std::size_t>(width_);
  o_hat_.assign(static_cast<std::size_t>(rows) * static_cast<std::size_t>(d), 0.0);
  part_.resize(static_cast<std::size_t>(rows) * static_cast<std::size_t>(d));
  // Frozen blocks: each read once for every (step, head) of the chunk.
  for (int b = 0; b < frozen_blocks_ * kWeightedRowBlock; b += kWeightedRowBlock) {
    std::fill(part_.begin(), part_.end(), 0.0);
    add_weighted_rows(p_hat_.data() + b, rows, static_cast<std::ptrdiff_t>(w), view.values.row(b).data(),
                      kWeightedRowBlock, view.values.outerStride(), d, part_.data(), d);
    for (std::size_t i = 0; i < o_hat_.size(); ++i) o_hat_[i] += part_[i];
  }
  for (int s = 0; s < chunk.steps(); ++s) {
    double out_rel = 0.0;
    for (int j = 0; j < g; ++j) {
      const std::size_t r = static_cast<std::size_t>(s * g + j);
      double* o = o_hat_.data() + r * static_cast<std::size_t>(d);
      const std::vector<double>& tail = tail_[r];
      for (std::size_t at = 0; at < tail.size(); at += static_cast<std::size_t>(d))
        for (int c = 0; c < d; ++c) o[c] += tail[at + static_cast<std::size_t>(c)];
      out_rel += output_error(chunk.at(s, j), o, d);
    }
    steps[static_cast<std::size_t>(s)].attn.out_rel = out_rel;
  }
}

}  // namespace kvlab
