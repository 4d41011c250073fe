#pragma once
// The power-iteration low-rank fitter (REFERENCE: "Low-rank residual fit (L)").
//
// R [n × d], rank r, `loop` iterations: P ∈ R^{d×r} with i.i.d. standard normal
// entries from the given Rng; repeat `loop` times { A = orth(R·P); P = Rᵀ·A };
// L = A·Pᵀ. orth is a thin Householder QR in double (own kernel: the same
// reflectors and signs as Eigen's HouseholderQR). A [n × r] and
// P [d × r] are stored in FP16: both are rounded with round_to_fp16 before L is
// formed (unless round_fp16 = false, for tests of the fit itself).
// The effective rank is min(r, n, d); size = (n + d) · r_eff · 16 bits.
// Single-threaded and deterministic for a given Rng state.
//
// Summation order (fixed, so results are bit-identical on every instruction
// set; tests/test_lowrank.cpp repeats it in plain loops):
//   (R·P)(i, j): eight lanes, lane l summing R(i, c)·P(c, j) over c ≡ l (mod 8)
//     in increasing c from 0, then ((l0 + l4) + (l1 + l5)) + ((l2 + l6) + (l3 + l7));
//   (Rᵀ·A)(c, j): Σ_i R(i, c)·A(i, j) in increasing i from 0.
// No fused multiply-adds.
#include <cstdint>

#include "kvlab/core/rng.hpp"
#include "kvlab/core/types.hpp"

namespace kvlab {

struct LowRankFactors {
  Matrix A;  // [n × r]
  Matrix P;  // [d × r]
  int rank() const { return static_cast<int>(A.cols()); }
};

int lowrank_effective_rank(int n, int d, int rank);
std::uint64_t lowrank_bits(int n, int d, int rank);  // (n + d) · r_eff · 16

// Fits R ≈ A·Pᵀ. loop >= 1.
LowRankFactors power_iteration(ConstMatrixRef R, int rank, int loop, Rng& rng, bool round_fp16 = true);

// out += A·Pᵀ.
void add_lowrank(const LowRankFactors& f, MatrixRef out);

}  // namespace kvlab
