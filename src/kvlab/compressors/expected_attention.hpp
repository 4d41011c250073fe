#pragma once
// Pieces of expected-attention (expected_attention.cpp) exposed for tests.
#include "kvlab/core/rope.hpp"
#include "kvlab/core/types.hpp"

namespace kvlab {

// R̄ = (1/count) Σ_{p = first}^{first + count − 1} R(p): the RoPE rotation
// averaged over `count` future positions, [d × d]. Per rotated pair (a, b)
// (RopeInfo::pair: neox (i, i + rotary_dim/2), gptj (2i, 2i + 1)) with
// frequency θ_i (RopeInfo::frequencies: the dump's inv_freq, or
// theta^(−2i/rotary_dim)): a·[[c̄, −s̄], [s̄, c̄]] with c̄ + i·s̄ the mean of
// e^{i·p·θ_i} (geometric series) and a the attention scaling; channels from
// rotary_dim on are not rotated. The identity without RoPE (style none).
MatrixD mean_rope_rotation(const RopeInfo& rope, int d, int first, int count);

}  // namespace kvlab
