#pragma once
// The attention-score accumulator shared by score-based token droppers (H2O,
// SnapKV, PyramidKV).
//
// For query rows q (one or more positions of each query head of a GQA group)
// and the current keys K over positions [0, n):
//
//   scores[j] += Σ_heads Σ_rows softmax_j(q·kⱼᵀ / √d)
//
// with the layer's attention rule (core/attention_rule.hpp): scale s instead
// of 1/√d, logits c·tanh(s·q·k/c) with a soft-cap c, and with a sliding
// window W a row at position t sees only keys j > t − W (the others get
// nothing, as the model never reads them).
//
// Row r of every head sits at position first_position + r and attends causally:
// only keys at positions j ≤ first_position + r that are present take part in
// its softmax (absent positions get probability 0 and receive nothing). At
// prefill (first_position = 0, all prompt queries) this is the causal prompt
// attention; at decode (one row at position t) it is the new query over the
// kept cache including the new token itself. The softmax is computed in double
// from float logits, with the maximum subtracted.
#include <cstdint>
#include <span>
#include <vector>

#include "kvlab/core/attention_rule.hpp"
#include "kvlab/core/types.hpp"

namespace kvlab {

// heads[h]: [m × d] queries of head h (all heads the same m); keys: [n × d]
// with first_position + m ≤ n; present: null (all present) or ≥ n entries;
// scores: ≥ n entries, added to (not cleared).
void accumulate_attention_scores(std::span<const ConstMatrixRef> heads, int first_position, ConstMatrixRef keys,
                                 const std::uint8_t* present, std::span<double> scores,
                                 const AttentionRule& rule = {});

// Convenience: a fresh score vector of keys.rows() entries.
std::vector<double> attention_scores(std::span<const ConstMatrixRef> heads, int first_position, ConstMatrixRef keys,
                                     const std::uint8_t* present = nullptr, const AttentionRule& rule = {});

}  // namespace kvlab
