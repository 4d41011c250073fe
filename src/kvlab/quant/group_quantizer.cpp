#include "kvlab/quant/group_quantizer.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kvlab/core/error.hpp"
#include "kvlab/core/fp16.hpp"

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

struct GroupParams {
  float zero;   // mn rounded to FP16
  float scale;  // s rounded to FP16 (0 → constant group)
  float divisor() const { return scale == 0.0f ? 1.0f : scale; }  // q·0 + zero = zero, branch-free
};

GroupParams group_params(float mn, float mx, float levels) {
  if (!(mn <= mx)) return {0.0f, 0.0f};  // every element excluded
  return {round_to_fp16(mn), round_to_fp16((mx - mn) / levels)};
}

// Round-half-to-even of y in [0, levels] (levels < 2^23): adding and removing
// 1.5·2^23 rounds in the FPU's default mode, and GCC vectorizes it (it does
// not vectorize nearbyint).
inline float round_even(float y) {
  constexpr float magic = 12582912.0f;
  return (y + magic) - magic;
}

// x̂ = round(clamp((x − zero) / divisor, 0, levels)) · scale + zero.
inline float dequantized(float x, float zero, float divisor, float scale, float levels) {
  const float y = std::min(std::max((x - zero) / divisor, 0.0f), levels);
  return round_even(y) * scale + zero;
}

// Per-channel groups of `g` rows: column-wise min/max over a row block is a
// contiguous, vectorizable sweep in row-major storage.
void quantize_per_channel(ConstMatrixRef x, int g, float levels, MatrixRef out, const ElementMask* ex) {
  const int n = static_cast<int>(x.rows()), d = static_cast<int>(x.cols());
  std::vector<float> mn(d), mx(d), zero(d), divisor(d), scale(d);
  for (int r0 = 0; r0 < n; r0 += g) {
    const int r1 = std::min(n, r0 + g);
    std::fill(mn.begin(), mn.end(), std::numeric_limits<float>::infinity());
    std::fill(mx.begin(), mx.end(), -std::numeric_limits<float>::infinity());
    for (int r = r0; r < r1; ++r) {
      const float* row = x.row(r).data();
      if (ex == nullptr) {
        for (int c = 0; c < d; ++c) {
          mn[c] = std::min(mn[c], row[c]);
          mx[c] = std::max(mx[c], row[c]);
        }
      } else {
        // Branch-free selects, so the masked sweep vectorizes too.
        const std::uint8_t* m = ex->row(r).data();
        constexpr float inf = std::numeric_limits<float>::infinity();
        for (int c = 0; c < d; ++c) {
          mn[c] = std::min(mn[c], m[c] ? inf : row[c]);
          mx[c] = std::max(mx[c], m[c] ? -inf : row[c]);
        }
      }
    }
    for (int c = 0; c < d; ++c) {
      const GroupParams p = group_params(mn[c], mx[c], levels);
      zero[c] = p.zero;
      scale[c] = p.scale;
      divisor[c] = p.divisor();
    }
    for (int r = r0; r < r1; ++r) {
      const float* row = x.row(r).data();
      float* dst = out.row(r).data();
      for (int c = 0; c < d; ++c) dst[c] = dequantized(row[c], zero[c], divisor[c], scale[c], levels);
      if (ex != nullptr) {
        const std::uint8_t* m = ex->row(r).data();
        for (int c = 0; c < d; ++c) dst[c] = m[c] ? 0.0f : dst[c];
      }
    }
  }
}

void quantize_per_token(ConstMatrixRef x, int g, float levels, MatrixRef out, const ElementMask* ex) {
  const int n = static_cast<int>(x.rows()), d = static_cast<int>(x.cols());
  for (int r = 0; r < n; ++r) {
    const float* row = x.row(r).data();
    float* dst = out.row(r).data();
    const std::uint8_t* m = ex ? ex->row(r).data() : nullptr;
    for (int c0 = 0; c0 < d; c0 += g) {
      const int len = std::min(d, c0 + g) - c0;
      float mn = std::numeric_limits<float>::infinity(), mx = -mn;
      if (m == nullptr) {
        const Eigen::Map<const Eigen::ArrayXf> group(row + c0, len);  // Eigen vectorizes min/max
        mn = group.minCoeff();
        mx = group.maxCoeff();
      } else {
        constexpr float inf = std::numeric_limits<float>::infinity();
        for (int c = c0; c < c0 + len; ++c) {
          mn = std::min(mn, m[c] ? inf : row[c]);
          mx = std::max(mx, m[c] ? -inf : row[c]);
        }
      }
      const GroupParams p = group_params(mn, mx, levels);
      const float div = p.divisor();
      for (int c = c0; c < c0 + len; ++c) dst[c] = dequantized(row[c], p.zero, div, p.scale, levels);
      if (m != nullptr)
        for (int c = c0; c < c0 + len; ++c) dst[c] = m[c] ? 0.0f : dst[c];
    }
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

BitCount fake_quantize(ConstMatrixRef x, const QuantConfig& cfg, MatrixRef out, const ElementMask* exclude) {
  KVLAB_ASSERT(cfg.bits >= 1 && cfg.bits <= 16);
  KVLAB_ASSERT(out.rows() == x.rows() && out.cols() == x.cols());
  const int n = static_cast<int>(x.rows()), d = static_cast<int>(x.cols());
  if (n == 0 || d == 0) return {};
  const float levels = static_cast<float>((1 << cfg.bits) - 1);
  const int g = effective_group(n, d, cfg);
  if (cfg.axis == QuantAxis::PerChannel)
    quantize_per_channel(x, g, levels, out, exclude);
  else
    quantize_per_token(x, g, levels, out, exclude);
  return quant_bits(n, d, cfg);
}

}  // namespace kvlab
