#pragma once
// Pieces of expected-attention (expected_attention.cpp) exposed for tests.
#include "kvlab/core/rope.hpp"
#include "kvlab/core/types.hpp"

namespace kvlab {

// R̄ = (1/count) Σ_{p = first}^{first + count − 1} R(p): the RoPE rotation
// averaged over `count` future positions, [d × d]. Per rotated pair (a, b)
// with frequency θ_i = theta^(−2i/d) (neox: (i, i + d/2), gptj: (2i, 2i + 1)):
// [[c̄, −s̄], [s̄, c̄]] with c̄ + i·s̄ the mean of e^{i·p·θ_i} (geometric series).
// The identity without RoPE (style none).
MatrixD mean_rope_rotation(const RopeInfo& rope, int d, int first, int count);

}  // namespace kvlab
