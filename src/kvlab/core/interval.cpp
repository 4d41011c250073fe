#include "kvlab/core/interval.hpp"

#include <cmath>
#include <limits>

#include "kvlab/core/error.hpp"

namespace kvlab {

double student_t975(int df) {
  KVLAB_ASSERT(df >= 1);
  // Exact to the digits shown (standard tables) for small df.
  static const double table[30] = {12.706204736, 4.302652730, 3.182446305, 2.776445105, 2.570581836,
                                   2.446911851, 2.364624252, 2.306004135, 2.262157163, 2.228138852,
                                   2.200985160, 2.178812830, 2.160368656, 2.144786688, 2.131449546,
                                   2.119905299, 2.109815578, 2.100922040, 2.093024054, 2.085963447,
                                   2.079613845, 2.073873068, 2.068657610, 2.063898562, 2.059538553,
                                   2.055529439, 2.051830516, 2.048407142, 2.045229642, 2.042272456};
  if (df <= 30) return table[df - 1];
  // Cornish–Fisher expansion around the normal quantile; error < 1e-5 for df > 30.
  const double z = 1.959963984540054, v = df;
  const double z3 = z * z * z, z5 = z3 * z * z, z7 = z5 * z * z;
  return z + (z3 + z) / (4 * v) + (5 * z5 + 16 * z3 + 3 * z) / (96 * v * v) +
         (3 * z7 + 19 * z5 + 17 * z3 - 15 * z) / (384 * v * v * v);
}

MeanInterval mean_interval95(std::span<const double> values) {
  MeanInterval m;
  double sum = 0.0;
  for (double v : values)
    if (!std::isnan(v)) {
      sum += v;
      ++m.n;
    }
  if (m.n == 0) {
    m.mean = m.half_width = std::numeric_limits<double>::quiet_NaN();
    return m;
  }
  m.mean = sum / m.n;
  if (m.n < 2) {
    m.half_width = std::numeric_limits<double>::quiet_NaN();
    return m;
  }
  double ss = 0.0;
  for (double v : values)
    if (!std::isnan(v)) ss += (v - m.mean) * (v - m.mean);
  m.sd = std::sqrt(ss / (m.n - 1));
  m.half_width = student_t975(m.n - 1) * m.sd / std::sqrt(static_cast<double>(m.n));
  return m;
}

}  // namespace kvlab
