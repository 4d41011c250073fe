#pragma once
// The kernels of the power-iteration fitter (lowrank.cpp), exposed so tests
// can hold each one against plain loops. Matrices are dense: `R` row-major
// [n × d]; `A` column-major [n × r]; `Pt` row-major [r × d]. Summation orders
// are fixed (see lowrank.hpp), so results are bit-identical on every
// instruction set.
#include <Eigen/Core>

namespace kvlab::lowrank_kernels {

// A = R·Ptᵀ.
void project_rows(const float* R, int n, int d, const float* Pt, int r, float* A);
// Pt = Aᵀ·R.
void accumulate_rows(const float* R, int n, int d, const float* A, int r, float* Pt);
// A ← the Q of A's thin QR (n >= r), by Householder reflections in double with
// Eigen's conventions (R's diagonal entry k is −sign(pivot)·norm), so Q equals
// Eigen's HouseholderQR Q to double rounding.
void thin_q(float* A, int n, int r);
// out(i, c) += Σ_j A(i, j)·Pt(j, c) for row-major A [n × r], summed as
// ((0 + A(i,0)·Pt(0,c)) + A(i,1)·Pt(1,c)) + … and then added to out(i, c).
void add_product(const float* A, int n, int r, const float* Pt, int d, float* out, Eigen::Index ld_out);
// Every value rounded to FP16 (round_to_fp16).
void round_to_fp16(float* values, Eigen::Index count);

}  // namespace kvlab::lowrank_kernels
