#include "kvlab/quant/clipped_quantizer.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kvlab/core/error.hpp"
#include "kvlab/core/fp16.hpp"
#include "kvlab/core/fp8.hpp"

namespace kvlab {

int meta_bits(MetaFormat meta) { return meta == MetaFormat::Fp8 ? 8 : 16; }

BitCount clipped_quantize(ConstMatrixRef x, const ChannelGroups& groups, const ClippedQuantConfig& cfg, MatrixRef out) {
  KVLAB_ASSERT(cfg.bits >= 1 && cfg.bits <= 16 && cfg.clip > 0.0 && cfg.clip <= 1.0);
  const int n = static_cast<int>(x.rows()), d = static_cast<int>(x.cols());
  const float levels = static_cast<float>((1 << cfg.bits) - 1);
  const float clip = static_cast<float>(cfg.clip);
  auto meta = [&](float v) { return cfg.meta == MetaFormat::Fp8 ? round_to_fp8_e4m3(v) : round_to_fp16(v); };
  for (int r = 0; r < n; ++r) {
    const float* row = x.row(r).data();
    float* dst = out.row(r).data();
    for (const auto& g : groups) {
      float mn = std::numeric_limits<float>::infinity(), mx = -mn;
      for (int c : g) {
        mn = std::min(mn, row[c]);
        mx = std::max(mx, row[c]);
      }
      const float zero = meta(clip * mn);
      const float scale = meta(clip * (mx - mn) / levels);
      const float div = scale == 0.0f ? 1.0f : scale;
      for (int c : g) {
        const float y = std::min(std::max((row[c] - zero) / div, 0.0f), levels);
        dst[c] = std::nearbyint(y) * scale + zero;
      }
    }
  }
  BitCount b;
  b.codes = static_cast<std::uint64_t>(cfg.bits) * static_cast<std::uint64_t>(n) * static_cast<std::uint64_t>(d);
  b.metadata = 2ULL * static_cast<std::uint64_t>(meta_bits(cfg.meta)) * static_cast<std::uint64_t>(n) *
               static_cast<std::uint64_t>(groups.size());
  return b;
}

}  // namespace kvlab
