#include "kvlab/quant/group_quantizer.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kvlab/core/error.hpp"
#include "kvlab/core/fp16.hpp"
#include "kvlab/core/simd.hpp"

namespace kvlab {

const char* to_string(QuantAxis axis) { return axis == QuantAxis::PerToken ? "token" : "channel"; }

QuantAxis parse_quant_axis(const std::string& text) {
  if (text == "token") return QuantAxis::PerToken;
  if (text == "channel") return QuantAxis::PerChannel;
  fail("unknown quantization axis '{}' (expected token or channel)", text);
}

namespace {

int effective_group(int n, int d, const QuantConfig& cfg) {
  const int axis_len = cfg.axis == QuantAxis::PerToken ? d : n;
  return (cfg.group <= 0 || cfg.group > axis_len) ? axis_len : cfg.group;
}

using simd::f8;
using simd::i8;
constexpr float kInf = std::numeric_limits<float>::infinity();

struct GroupParams {
  float zero;   // mn rounded to FP16
  float scale;  // s rounded to FP16 (0 → constant group)
  float divisor() const { return scale == 0.0f ? 1.0f : scale; }  // q·0 + zero = zero, branch-free
};

KVLAB_SIMD_INLINE GroupParams group_params(float mn, float mx, float levels) {
  if (!(mn <= mx)) return {0.0f, 0.0f};  // every element excluded
  return {round_to_fp16(mn), round_to_fp16((mx - mn) / levels)};
}

// Round-half-to-even of y in [0, levels] (levels < 2^23): adding and removing
// 1.5·2^23 rounds in the FPU's default mode (GCC does not vectorize nearbyint).
constexpr float kRoundMagic = 12582912.0f;
KVLAB_SIMD_INLINE float round_even(float y) { return (y + kRoundMagic) - kRoundMagic; }

// x̂ = round(clamp((x − zero) / divisor, 0, levels)) · scale + zero.
KVLAB_SIMD_INLINE float dequantized(float x, float zero, float divisor, float scale, float levels) {
  const float y = std::min(std::max((x - zero) / divisor, 0.0f), levels);
  return round_even(y) * scale + zero;
}

// The same, eight lanes at once (lane-wise identical arithmetic).
struct GroupParams8 {
  f8 zero, scale, divisor;
};

KVLAB_SIMD_INLINE GroupParams8 group_params8(f8 mn, f8 mx, float levels) {
  const i8 valid = mn <= mx;  // else every element of the lane's group is excluded
  const f8 zero = simd::round8_to_fp16(mn), scale = simd::round8_to_fp16((mx - mn) / levels);
  GroupParams8 p;
  p.zero = valid ? zero : f8{};
  p.scale = valid ? scale : f8{};
  p.divisor = p.scale == 0.0f ? simd::constant8(1.0f) : p.scale;
  return p;
}

KVLAB_SIMD_INLINE f8 dequantized8(f8 x, const GroupParams8& p, f8 levels) {
  const f8 y = simd::min8(simd::max8((x - p.zero) / p.divisor, f8{}), levels);
  return ((y + kRoundMagic) - kRoundMagic) * p.scale + p.zero;
}

// Plain pointers and strides: the kernels below are compiled twice (SSE2 and
// AVX2) and give identical results, lane-wise arithmetic being the same.
struct Block {
  const float* x;
  Eigen::Index ldx;
  float* out;
  Eigen::Index ldo;
  const std::uint8_t* ex;  // exclusion mask, row-major [n × d], or null
  int n, d;
  float* res = nullptr;  // GEAR: the residual x − out, [n × d] dense
  const float* xrow(int r) const { return x + r * ldx; }
  float* orow(int r) const { return out + r * ldo; }
  float* rrow(int r) const { return res + static_cast<std::ptrdiff_t>(r) * d; }
  const std::uint8_t* mrow(int r) const { return ex + static_cast<std::ptrdiff_t>(r) * d; }
};

// Writes the reconstruction q of x at (r, c..c+8). An excluded element is 0,
// or with Gear 0 + round_to_fp16(x) (add_outliers' result for it), and Gear
// also writes the residual x − out.
template <bool Masked, bool Gear>
KVLAB_SIMD_INLINE void put8(const Block& b, int r, int c, f8 x, f8 q) {
  if constexpr (Masked) {
    if (simd::any8(b.mrow(r) + c)) {  // outliers are sparse: most chunks skip this
      const i8 m = simd::mask8(b.mrow(r) + c);
      if constexpr (Gear)
        q = m ? f8{} + simd::round8_to_fp16(x) : q;
      else
        q = m ? f8{} : q;
    }
  }
  simd::store8(b.orow(r) + c, q);
  if constexpr (Gear) simd::store8(b.rrow(r) + c, x - q);
}
template <bool Masked, bool Gear>
KVLAB_SIMD_INLINE void put1(const Block& b, int r, int c, float x, float q) {
  if (Masked && b.mrow(r)[c]) q = Gear ? 0.0f + round_to_fp16(x) : 0.0f;
  b.orow(r)[c] = q;
  if constexpr (Gear) b.rrow(r)[c] = x - q;
}

// Per-channel groups of `g` rows: the group's rows are swept in memory order
// twice (column-wise min/max into small arrays, then the codes); the group
// stays in L1 in between. Any order of the min/max sweep gives the same
// reconstruction (see per_token_groups).
template <bool Masked, bool Gear>
KVLAB_SIMD_INLINE void per_channel_groups(const Block& b, int g, float levels) {
  const f8 inf = simd::constant8(kInf), ninf = simd::constant8(-kInf), lv = simd::constant8(levels);
  const int d8 = b.d / 8 * 8;
  // Per column: running min/max, then the group's zero, scale and divisor.
  // Plain float arrays (vectors of vector types lose their alignment).
  std::vector<float> mn(static_cast<std::size_t>(b.d)), mx(mn.size()), zero(mn.size()), scale(mn.size()),
      divisor(mn.size());
  for (int r0 = 0; r0 < b.n; r0 += g) {
    const int r1 = std::min(b.n, r0 + g);
    std::fill(mn.begin(), mn.end(), kInf);
    std::fill(mx.begin(), mx.end(), -kInf);
    for (int r = r0; r < r1; ++r) {
      const float* row = b.xrow(r);
      for (int c = 0; c < d8; c += 8) {
        const f8 v = simd::load8(row + c);
        if (Masked && simd::any8(b.mrow(r) + c)) {
          const i8 m = simd::mask8(b.mrow(r) + c);
          simd::store8(&mn[c], simd::min8(simd::load8(&mn[c]), m ? inf : v));
          simd::store8(&mx[c], simd::max8(simd::load8(&mx[c]), m ? ninf : v));
        } else {
          simd::store8(&mn[c], simd::min8(simd::load8(&mn[c]), v));
          simd::store8(&mx[c], simd::max8(simd::load8(&mx[c]), v));
        }
      }
      for (int c = d8; c < b.d; ++c) {
        const bool m = Masked && b.mrow(r)[c];
        mn[c] = std::min(mn[c], m ? kInf : row[c]);
        mx[c] = std::max(mx[c], m ? -kInf : row[c]);
      }
    }
    for (int c = 0; c < d8; c += 8) {
      const GroupParams8 p = group_params8(simd::load8(&mn[c]), simd::load8(&mx[c]), levels);
      simd::store8(&zero[c], p.zero);
      simd::store8(&scale[c], p.scale);
      simd::store8(&divisor[c], p.divisor);
    }
    for (int c = d8; c < b.d; ++c) {
      const GroupParams p = group_params(mn[c], mx[c], levels);
      zero[c] = p.zero;
      scale[c] = p.scale;
      divisor[c] = p.divisor();
    }
    for (int r = r0; r < r1; ++r) {
      const float* row = b.xrow(r);
      if (r + g < b.n)  // the next group's row, fetched while this one is coded
        for (int c = 0; c < b.d; c += 16) __builtin_prefetch(b.xrow(r + g) + c);
      for (int c = 0; c < d8; c += 8) {
        const GroupParams8 p{simd::load8(&zero[c]), simd::load8(&scale[c]), simd::load8(&divisor[c])};
        const f8 v = simd::load8(row + c);
        put8<Masked, Gear>(b, r, c, v, dequantized8(v, p, lv));
      }
      for (int c = d8; c < b.d; ++c)
        put1<Masked, Gear>(b, r, c, row[c], dequantized(row[c], zero[c], divisor[c], scale[c], levels));
    }
  }
}

KVLAB_SIMD_CLONES void quantize_per_channel(const Block& b, int g, float levels) {
  if (b.res != nullptr) {
    if (b.ex != nullptr)
      per_channel_groups<true, true>(b, g, levels);
    else
      per_channel_groups<false, true>(b, g, levels);
  } else if (b.ex != nullptr) {
    per_channel_groups<true, false>(b, g, levels);
  } else {
    per_channel_groups<false, false>(b, g, levels);
  }
}

// Per-token groups of `g` channels along each row, eight rows at a time: the
// groups' min/max first, then their parameters eight groups per vector, then
// the codes. The min and max are taken eight lanes at a time, then across the
// lanes of eight groups at once (simd::reduce_lanes8), then over the scalar
// tail: an order that can differ from a sequential sweep only in which zero
// (+0 or −0) it returns, and that never shows in the reconstruction: q·s + zero
// is +0 for a zero of either sign.
template <bool Masked, bool Gear>
KVLAB_SIMD_INLINE void per_token_groups(const Block& b, int g, float levels) {
  constexpr int kRows = 8;
  const f8 inf = simd::constant8(kInf), ninf = simd::constant8(-kInf), lv = simd::constant8(levels);
  const int groups = (b.d + g - 1) / g;
  const std::size_t slots = static_cast<std::size_t>(kRows) * groups;
  // Per group: its eight lane minima/maxima (slots rounded up to whole
  // vectors of groups), then the reduced min/max.
  const std::size_t padded = (slots + 7) / 8 * 8;
  // (Plain float arrays: a std::vector of vector types loses their alignment.)
  std::vector<float> lo_lanes(padded * 8, kInf), hi_lanes(padded * 8, -kInf);
  std::vector<float> mn(padded), mx(padded), zero(slots), scale(slots), divisor(slots);
  for (int r0 = 0; r0 < b.n; r0 += kRows) {
    const int r1 = std::min(b.n, r0 + kRows);
    for (int r = r0; r < r1; ++r) {
      const float* row = b.xrow(r);
      const std::uint8_t* m = Masked ? b.mrow(r) : nullptr;
      for (int k = 0; k < groups; ++k) {
        const int c0 = k * g, c1 = std::min(b.d, c0 + g), c8 = c0 + (c1 - c0) / 8 * 8;
        f8 lo8 = inf, hi8 = ninf;
        for (int c = c0; c < c8; c += 8) {
          const f8 v = simd::load8(row + c);
          if (Masked && simd::any8(m + c)) {
            const i8 e = simd::mask8(m + c);
            lo8 = simd::min8(lo8, e ? inf : v);
            hi8 = simd::max8(hi8, e ? ninf : v);
          } else {
            lo8 = simd::min8(lo8, v);
            hi8 = simd::max8(hi8, v);
          }
        }
        const std::size_t i = static_cast<std::size_t>(r - r0) * groups + k;
        simd::store8(&lo_lanes[i * 8], lo8);
        simd::store8(&hi_lanes[i * 8], hi8);
      }
    }
    const int count = (r1 - r0) * groups, count8 = count / 8 * 8;
    for (std::size_t i = 0; i < static_cast<std::size_t>(count); i += 8) {
      f8 lo[8], hi[8];
      for (std::size_t j = 0; j < 8; ++j) {
        lo[j] = simd::load8(&lo_lanes[(i + j) * 8]);
        hi[j] = simd::load8(&hi_lanes[(i + j) * 8]);
      }
      simd::store8(&mn[i], simd::reduce_lanes8(lo, [](f8 x, f8 y) { return simd::min8(x, y); }));
      simd::store8(&mx[i], simd::reduce_lanes8(hi, [](f8 x, f8 y) { return simd::max8(x, y); }));
    }
    if (g % 8 != 0 || b.d % g % 8 != 0) {  // channels past the last whole vector of a group
      for (int r = r0; r < r1; ++r) {
        const float* row = b.xrow(r);
        for (int k = 0; k < groups; ++k) {
          const int c0 = k * g, c1 = std::min(b.d, c0 + g), c8 = c0 + (c1 - c0) / 8 * 8;
          const std::size_t i = static_cast<std::size_t>(r - r0) * groups + k;
          for (int c = c8; c < c1; ++c) {
            const bool e = Masked && b.mrow(r)[c];
            mn[i] = std::min(mn[i], e ? kInf : row[c]);
            mx[i] = std::max(mx[i], e ? -kInf : row[c]);
          }
        }
      }
    }
    for (int i = 0; i < count8; i += 8) {
      const GroupParams8 p = group_params8(simd::load8(&mn[i]), simd::load8(&mx[i]), levels);
      simd::store8(&zero[i], p.zero);
      simd::store8(&scale[i], p.scale);
      simd::store8(&divisor[i], p.divisor);
    }
    for (int i = count8; i < count; ++i) {
      const GroupParams p = group_params(mn[i], mx[i], levels);
      zero[i] = p.zero;
      scale[i] = p.scale;
      divisor[i] = p.divisor();
    }
    for (int r = r0; r < r1; ++r) {
      const float* row = b.xrow(r);
      // The next block's row, fetched while this one is coded: the min/max
      // sweep would otherwise wait on memory with nothing to overlap.
      if (r + kRows < b.n)
        for (int c = 0; c < b.d; c += 16) __builtin_prefetch(b.xrow(r + kRows) + c);
      for (int k = 0; k < groups; ++k) {
        const int c0 = k * g, c1 = std::min(b.d, c0 + g), c8 = c0 + (c1 - c0) / 8 * 8;
        const std::size_t i = static_cast<std::size_t>(r - r0) * groups + k;
        const GroupParams8 p{simd::constant8(zero[i]), simd::constant8(scale[i]), simd::constant8(divisor[i])};
        for (int c = c0; c < c8; c += 8) {
          const f8 v = simd::load8(row + c);
          put8<Masked, Gear>(b, r, c, v, dequantized8(v, p, lv));
        }
        for (int c = c8; c < c1; ++c)
          put1<Masked, Gear>(b, r, c, row[c], dequantized(row[c], zero[i], divisor[i], scale[i], levels));
      }
    }
  }
}

KVLAB_SIMD_CLONES void quantize_per_token(const Block& b, int g, float levels) {
  if (b.res != nullptr) {
    if (b.ex != nullptr)
      per_token_groups<true, true>(b, g, levels);
    else
      per_token_groups<false, true>(b, g, levels);
  } else if (b.ex != nullptr) {
    per_token_groups<true, false>(b, g, levels);
  } else {
    per_token_groups<false, false>(b, g, levels);
  }
}

}  // namespace

std::int64_t quant_group_count(int n, int d, const QuantConfig& cfg) {
  if (n == 0 || d == 0) return 0;
  const std::int64_t g = effective_group(n, d, cfg);
  if (cfg.axis == QuantAxis::PerToken) return static_cast<std::int64_t>(n) * ((d + g - 1) / g);
  return static_cast<std::int64_t>(d) * ((n + g - 1) / g);
}

BitCount quant_bits(int n, int d, const QuantConfig& cfg) {
  BitCount b;
  b.codes = static_cast<std::uint64_t>(cfg.bits) * static_cast<std::uint64_t>(n) * static_cast<std::uint64_t>(d);
  b.metadata = 32ULL * static_cast<std::uint64_t>(quant_group_count(n, d, cfg));
  return b;
}

namespace {
BitCount quantize_block(ConstMatrixRef x, const QuantConfig& cfg, MatrixRef out, const ElementMask* exclude,
                        Matrix* residual) {
  KVLAB_ASSERT(cfg.bits >= 1 && cfg.bits <= 16);
  KVLAB_ASSERT(out.rows() == x.rows() && out.cols() == x.cols());
  const int n = static_cast<int>(x.rows()), d = static_cast<int>(x.cols());
  if (exclude != nullptr) KVLAB_ASSERT(exclude->rows() == n && exclude->cols() == d);
  if (residual != nullptr) residual->resize(n, d);
  if (n == 0 || d == 0) return {};
  const float levels = static_cast<float>((1 << cfg.bits) - 1);
  const int g = effective_group(n, d, cfg);
  Block b{x.data(), x.outerStride(), out.data(), out.outerStride(),
          exclude != nullptr ? exclude->data() : nullptr, n, d};
  if (residual != nullptr) b.res = residual->data();
  if (cfg.axis == QuantAxis::PerChannel)
    quantize_per_channel(b, g, levels);
  else
    quantize_per_token(b, g, levels);
  return quant_bits(n, d, cfg);
}
}  // namespace

BitCount fake_quantize(ConstMatrixRef x, const QuantConfig& cfg, MatrixRef out, const ElementMask* exclude) {
  return quantize_block(x, cfg, out, exclude, nullptr);
}

BitCount quantize_with_residual(ConstMatrixRef x, const QuantConfig& cfg, MatrixRef out, Matrix& residual,
                                const ElementMask* outliers) {
  return quantize_block(x, cfg, out, outliers, &residual);
}

}  // namespace kvlab
