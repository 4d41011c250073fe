#pragma once
// Applying / undoing rotary position embeddings on a block of rows.
//   neox (rotate-half): pairs (i, i + d/2);  gptj (interleaved): pairs (2i, 2i+1);
//   inv_freq_i = theta^(-2i/d), angle = position · inv_freq_i, position = token index.
//   forward: (a, b) → (a·cos − b·sin, b·cos + a·sin); inverse uses −angle.
// Angles and the rotation are computed in double.
#include "kvlab/core/rope.hpp"
#include "kvlab/core/types.hpp"

namespace kvlab {

// Rotates rows of x in place; row r has position first_position + r.
// Throws kvlab::Error if the style is None or d is odd.
void rope_rotate(MatrixRef x, const RopeInfo& rope, int first_position, bool inverse);

}  // namespace kvlab
