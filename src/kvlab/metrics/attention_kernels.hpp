#pragma once
// The two products behind the attention metrics, written so that every result
// has one fixed sequence of float/double operations whatever the blocking,
// the CPU (SSE2, AVX2 or AVX-512 clone, picked at load time) or the thread:
// lanes are explicit, and the file is compiled without contracting a·b + c
// into FMA. So a logit or an output computed once for many steps, or for many
// compressors, is bit-identical to one computed alone.
#include <cstddef>

#include "kvlab/core/types.hpp"

namespace kvlab {

// Rows per block of the blocked weighted sum.
inline constexpr int kWeightedRowBlock = 64;

// out[j·ldo + i] = q_j · k_i for j < m, i < rows: Σ_c q_j[c]·k_i[c] summed in
// float in channel order from 0.
void dot_logits(const float* q, int m, std::ptrdiff_t ldq, const float* k, int rows, std::ptrdiff_t ldk, int d,
                float* out, std::ptrdiff_t ldo);

// For each r < m: part[r·ldpart + c] += p[r·ldp + i]·v(i, c) for i = 0 ..
// rows−1 in order (every row, p = 0 included), in double; v is [rows × d]
// with row stride ldv. rows <= kWeightedRowBlock.
void add_weighted_rows(const double* p, int m, std::ptrdiff_t ldp, const float* v, int rows, std::ptrdiff_t ldv,
                       int d, double* part, std::ptrdiff_t ldpart);

// o = p·V in the canonical blocked order: each block of kWeightedRowBlock rows
// summed from zero by add_weighted_rows, the block sums added in block order.
// out: [values.cols()] entries, overwritten.
void weighted_row_sum(const double* p, ConstMatrixRef values, double* out);

}  // namespace kvlab
