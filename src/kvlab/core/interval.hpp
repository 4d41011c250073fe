#pragma once
// Mean and two-sided 95 % confidence interval of a small sample, with the
// Student t distribution (n − 1 degrees of freedom): mean ± t₀.₉₇₅,ₙ₋₁ · s/√n,
// s the sample standard deviation. Used to summarise a metric over dumps and
// seeds; it assumes the samples are independent and roughly normal.
#include <span>

namespace kvlab {

struct MeanInterval {
  int n = 0;
  double mean = 0.0;
  double sd = 0.0;         // sample standard deviation (n − 1); 0 when n < 2
  double half_width = 0.0; // t·sd/√n; NaN when n < 2 (no interval from one sample)
  double low() const { return mean - half_width; }
  double high() const { return mean + half_width; }
};

// NaN values are skipped. An empty sample gives n = 0 and a NaN mean.
MeanInterval mean_interval95(std::span<const double> values);

// The 0.975 quantile of Student's t with `df` ≥ 1 degrees of freedom.
double student_t975(int df);

}  // namespace kvlab
