#pragma once
// The per-position loops of the attention metrics, vectorised with a fixed
// lane order (position i in lane i mod 8, lanes combined pairwise) and a
// lane-wise exp, so every clone (SSE2, AVX2, AVX-512) gives the same bits.
#include <cstdint>

namespace kvlab {

// exp(x) for x <= 0 in double, as the lanes compute it: within 2 ulp of the
// true value; 0 below -745.2 (tests check it against std::exp).
double exp_nonpositive(double x);

// softmax(z·scale) over the present positions (present null = all):
// p_i = exp(scale·z_i − max) / Σ, 0 at absent positions. Returns max and
// log Σ (log Σ = −inf when nothing is present, p all 0).
struct SoftmaxNorm {
  double max = 0.0;
  double log_sum = 0.0;
};
SoftmaxNorm softmax_into(const float* z, int n, double scale, const std::uint8_t* present, double* p);

// The sums behind kl, kl_rev and dropped_mass (attention.hpp), with
// a_i = scale·z_i − max: kept = Σ_present p_i, dropped = Σ_absent p_i, then
// kl = Σ_{present, p_i > 0} p_i / kept_used · ((a_i − â_i) + offset) and
// kl_rev = Σ_{p̂_i > 0} p̂_i · ((â_i − a_i) − rev_offset), where kept_used is
// 1 when nothing is dropped, offset = log Σ̂ − log Σ − log kept_used and
// rev_offset = log Σ̂ − log Σ.
struct ScoreSums {
  double kept = 0.0, dropped = 0.0, kl = 0.0, kl_rev = 0.0;
};
ScoreSums score_sums(const float* z, const double* p, const SoftmaxNorm& ref, const float* z_hat,
                     const double* p_hat, const SoftmaxNorm& hat, const std::uint8_t* present, int n, double scale);

}  // namespace kvlab
