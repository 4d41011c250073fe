#pragma once
// FP8 E4M3 ("e4m3fn": 4 exponent bits, bias 7, 3 mantissa bits, no infinities)
// rounding, for quantization metadata stored in 8 bits (SKVQ's fp8 scales).
// Round-to-nearest-even; normal numbers from 2^-6, subnormals in steps of
// 2^-9; magnitudes above the largest finite value, 448, saturate to ±448.
#include <cmath>

namespace kvlab {

inline float round_to_fp8_e4m3(float x) {
  if (!std::isfinite(x) || x == 0.0f) return x;
  const float a = std::abs(x);
  int e = 0;
  std::frexp(a, &e);                    // a = m·2^e, m ∈ [0.5, 1): leading bit 2^(e−1)
  const int lead = e - 1 < -6 ? -6 : e - 1;  // below 2^-6: subnormal spacing
  const float quantum = std::ldexp(1.0f, lead - 3);
  float r = std::nearbyint(a / quantum) * quantum;  // default rounding mode: half to even
  if (r > 448.0f) r = 448.0f;
  return std::copysign(r, x);
}

}  // namespace kvlab
