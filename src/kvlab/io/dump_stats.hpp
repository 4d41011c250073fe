#pragma once
// Per-layer statistics of a dump, for `kvlab inspect`.
#include <vector>

#include "kvlab/core/types.hpp"
#include "kvlab/io/dump_info.hpp"

namespace kvlab {

// Statistics of one [T × d] matrix.
struct MatrixStats {
  double frobenius = 0;       // ‖X‖_F
  double outlier_ratio = 0;   // max_c mean_t |X[t,c]|  ÷  median_c mean_t |X[t,c]|
  int effective_rank = 0;     // smallest r with Σ_{i<r} σ_i² ≥ energy · Σ σ_i²
};
MatrixStats matrix_stats(const Matrix& x, double energy = 0.9);

// Fraction of Σσ² held by the top `rank` singular values of x.
double top_energy_fraction(const Matrix& x, int rank);

struct LayerStats {
  int layer = 0;
  double key_norm = 0, value_norm = 0;                    // mean over kv heads of ‖K‖_F, ‖V‖_F
  double key_outlier_ratio = 0, value_outlier_ratio = 0;  // mean over kv heads
  double key_rank90 = 0, value_rank90 = 0;                // mean over kv heads of effective rank @ 90%
};
// Single-threaded and deterministic.
LayerStats layer_stats(const LayerData& data);

}  // namespace kvlab
