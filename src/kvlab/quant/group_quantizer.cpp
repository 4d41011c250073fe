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
  const float* xrow(int r) const { return x + r * ldx; }
  float* orow(int r) const { return out + r * ldo; }
  const std::uint8_t* mrow(int r) const { return ex + static_cast<std::ptrdiff_t>(r) * d; }
};

// Per-channel groups of `g` rows, eight columns at a time: min/max down the
// group, then the group's codes; the group's rows stay in L1 in between. Any
// order of the min/max sweep gives the same reconstruction (see quantize_per_token).
template <bool Masked>
KVLAB_SIMD_INLINE void per_channel_groups(const Block& b, int g, float levels) {
  const f8 inf = simd::constant8(kInf), ninf = simd::constant8(-kInf), lv = simd::constant8(levels);
  const int d8 = b.d / 8 * 8;
  for (int r0 = 0; r0 < b.n; r0 += g) {
    const int r1 = std::min(b.n, r0 + g);
    for (int c = 0; c < d8; c += 8) {
      f8 mn = inf, mx = ninf;
      for (int r = r0; r < r1; ++r) {
        const f8 v = simd::load8(b.xrow(r) + c);
        if constexpr (Masked) {
          const i8 m = simd::mask8(b.mrow(r) + c);
          mn = simd::min8(mn, m ? inf : v);
          mx = simd::max8(mx, m ? ninf : v);
        } else {
          mn = simd::min8(mn, v);
          mx = simd::max8(mx, v);
        }
      }
      const GroupParams8 p = group_params8(mn, mx, levels);
      for (int r = r0; r < r1; ++r) {
        const f8 q = dequantized8(simd::load8(b.xrow(r) + c), p, lv);
        if constexpr (Masked)
          simd::store8(b.orow(r) + c, simd::mask8(b.mrow(r) + c) ? f8{} : q);
        else
          simd::store8(b.orow(r) + c, q);
      }
    }
    for (int c = d8; c < b.d; ++c) {
      float mn = kInf, mx = -kInf;
      for (int r = r0; r < r1; ++r) {
        const bool m = Masked && b.mrow(r)[c];
        mn = std::min(mn, m ? kInf : b.xrow(r)[c]);
        mx = std::max(mx, m ? -kInf : b.xrow(r)[c]);
      }
      const GroupParams p = group_params(mn, mx, levels);
      for (int r = r0; r < r1; ++r) {
        const bool m = Masked && b.mrow(r)[c];
        b.orow(r)[c] = m ? 0.0f : dequantized(b.xrow(r)[c], p.zero, p.divisor(), p.scale, levels);
      }
    }
  }
}

KVLAB_SIMD_CLONES void quantize_per_channel(const Block& b, int g, float levels) {
  if (b.ex != nullptr)
    per_channel_groups<true>(b, g, levels);
  else
    per_channel_groups<false>(b, g, levels);
}

// Per-token groups of `g` channels along each row. The min and max are taken
// eight lanes at a time and then across lanes, an order that can differ from
// a sequential sweep only in which zero (+0 or −0) it returns, and that never
// shows in the reconstruction: q·s + zero is +0 for a zero of either sign.
template <bool Masked>
KVLAB_SIMD_INLINE void per_token_groups(const Block& b, int g, float levels) {
  const f8 inf = simd::constant8(kInf), ninf = simd::constant8(-kInf), lv = simd::constant8(levels);
  for (int r = 0; r < b.n; ++r) {
    const float* row = b.xrow(r);
    float* dst = b.orow(r);
    const std::uint8_t* m = Masked ? b.mrow(r) : nullptr;
    for (int c0 = 0; c0 < b.d; c0 += g) {
      const int c1 = std::min(b.d, c0 + g), c8 = c0 + (c1 - c0) / 8 * 8;
      f8 mn8 = inf, mx8 = ninf;
      for (int c = c0; c < c8; c += 8) {
        const f8 v = simd::load8(row + c);
        if constexpr (Masked) {
          const i8 e = simd::mask8(m + c);
          mn8 = simd::min8(mn8, e ? inf : v);
          mx8 = simd::max8(mx8, e ? ninf : v);
        } else {
          mn8 = simd::min8(mn8, v);
          mx8 = simd::max8(mx8, v);
        }
      }
      float mn = kInf, mx = -kInf;
      for (int l = 0; l < 8; ++l) {
        mn = std::min(mn, mn8[l]);
        mx = std::max(mx, mx8[l]);
      }
      for (int c = c8; c < c1; ++c) {
        const bool e = Masked && m[c];
        mn = std::min(mn, e ? kInf : row[c]);
        mx = std::max(mx, e ? -kInf : row[c]);
      }
      const GroupParams p = group_params(mn, mx, levels);
      const float div = p.divisor();
      GroupParams8 p8;
      p8.zero = simd::constant8(p.zero);
      p8.scale = simd::constant8(p.scale);
      p8.divisor = simd::constant8(div);
      for (int c = c0; c < c8; c += 8) {
        const f8 q = dequantized8(simd::load8(row + c), p8, lv);
        simd::store8(dst + c, Masked ? (simd::mask8(m + c) ? f8{} : q) : q);
      }
      for (int c = c8; c < c1; ++c) {
        const float q = dequantized(row[c], p.zero, div, p.scale, levels);
        dst[c] = Masked && m[c] ? 0.0f : q;
      }
    }
  }
}

KVLAB_SIMD_CLONES void quantize_per_token(const Block& b, int g, float levels) {
  if (b.ex != nullptr)
    per_token_groups<true>(b, g, levels);
  else
    per_token_groups<false>(b, g, levels);
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

BitCount fake_quantize(ConstMatrixRef x, const QuantConfig& cfg, MatrixRef out, const ElementMask* exclude) {
  KVLAB_ASSERT(cfg.bits >= 1 && cfg.bits <= 16);
  KVLAB_ASSERT(out.rows() == x.rows() && out.cols() == x.cols());
  const int n = static_cast<int>(x.rows()), d = static_cast<int>(x.cols());
  if (n == 0 || d == 0) return {};
  const float levels = static_cast<float>((1 << cfg.bits) - 1);
  const int g = effective_group(n, d, cfg);
  if (exclude != nullptr) KVLAB_ASSERT(exclude->rows() == n && exclude->cols() == d);
  const Block b{x.data(), x.outerStride(), out.data(), out.outerStride(),
                exclude != nullptr ? exclude->data() : nullptr, n, d};
  if (cfg.axis == QuantAxis::PerChannel)
    quantize_per_channel(b, g, levels);
  else
    quantize_per_token(b, g, levels);
  return quant_bits(n, d, cfg);
}

}  // namespace kvlab
