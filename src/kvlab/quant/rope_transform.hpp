#pragma once
// Applying / undoing rotary position embeddings on a block of rows
// (docs/dump-format.md, "RoPE"):
//   pair i of the first rotary_dim channels: neox (rotate-half) (i, i + rotary_dim/2),
//   gptj (interleaved) (2i, 2i+1); channels from rotary_dim on are not rotated;
//   ω_i = the dump's inv_freq, or theta^(-2i/rotary_dim); angle = position · ω_i,
//   position = token index; a = attention_scaling:
//   forward: (x1, x2) → a·(x1·cos − x2·sin, x2·cos + x1·sin); inverse uses −angle and divides by a.
// Angles and the rotation are computed in double.
#include "kvlab/core/rope.hpp"
#include "kvlab/core/types.hpp"

namespace kvlab {

// Rotates rows of x in place; row r has position first_position + r.
// Throws kvlab::Error if the style is None, rotary_dim is odd or exceeds
// the row, or the frequencies do not match it.
void rope_rotate(MatrixRef x, const RopeInfo& rope, int first_position, bool inverse);

}  // namespace kvlab
