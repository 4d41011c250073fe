#pragma once
// The recorded attention of one kv head's query group at a run of evaluated
// positions, computed together: one pass over K for all their logits and one
// over V for all their outputs, instead of one pass per position. It depends
// only on the dump, so one chunk serves every compressor replayed on the head.
// Each position's numbers are those of computing it alone: the kernels
// (attention_kernels.hpp) fix every operation's order.
#include <span>
#include <vector>

#include "kvlab/core/attention_rule.hpp"
#include "kvlab/metrics/attention.hpp"
#include "kvlab/replay/head_input.hpp"

namespace kvlab {

class ReferenceChunk {
 public:
  // positions: ascending query positions (the cache holds [0, position]);
  // `in` must have queries. `rule`: the layer's scale, soft-cap and window.
  void compute(const HeadInput& in, std::span<const int> positions, const AttentionRule& rule = {});

  int steps() const { return static_cast<int>(positions_.size()); }
  int group() const { return g_; }
  int position(int s) const { return positions_[static_cast<std::size_t>(s)]; }
  double scale() const { return scale_; }  // the attention scale on q·k
  // The queries of step s: rows [s·g, s·g + g) of an [steps·g × d] matrix.
  const Matrix& queries() const { return q_; }
  // Query head j of the group at step s.
  ReferenceAttention at(int s, int j) const;

 private:
  std::vector<int> positions_;
  int g_ = 0, d_ = 0;
  int width_ = 0;  // tokens at the last position: the row stride of logits_ and p_
  double scale_ = 1.0;
  AttentionRule rule_;
  Matrix q_;
  std::vector<float> logits_;  // [steps·g × width]
  std::vector<double> p_;      // [steps·g × width]
  std::vector<SoftmaxNorm> norm_;
  std::vector<double> o_;      // [steps·g × d]
  std::vector<double> o_norm2_;
  std::vector<double> part_;
};

}  // namespace kvlab
