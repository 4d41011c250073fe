// uniform: group quantization of K and V on the same axis (FlexGen/Atom-style),
// optionally in a rotated basis (rotated_codec.hpp, docs/methods/rotation.md).
#include "kvlab/compressors/registry.hpp"
#include "kvlab/compressors/rotated_codec.hpp"
#include "kvlab/core/error.hpp"
#include "kvlab/compressors/quant_codec.hpp"

namespace kvlab::methods {

namespace {
// Per-token groups hold one token: quantize at once. Per-channel groups of G
// tokens wait in FP16 until G tokens exist (a lone token is never quantized
// per-channel); whole-axis per-channel quantizes the prompt as one segment and
// decode tokens in segments of `buffer`.
StreamPolicy policy_for(const QuantConfig& q, int buffer) {
  if (q.axis == QuantAxis::PerToken) return {1, 1, 0};
  if (q.group == 0) return {1, buffer, 0};
  return {q.group, q.group, 0};
}
}  // namespace

MethodInfo uniform() {
  return {"uniform",
          "quant",
          "Asymmetric min-max group quantization of K and V (same axis for both)",
          {{"bits", ParamType::Int, "4", "bits per element", 1, 8},
           {"group", ParamType::Int, "64", "group size along the axis (0 = whole axis)", 0, 65536},
           {"axis", ParamType::Choice, "token", "token: groups of channels per token; channel: groups of tokens",
            0, 0, {"token", "channel"}},
           ParamSpec{"buffer", ParamType::Int, "64", "decode tokens kept FP16 before a whole-axis per-channel segment",
                     1, 65536}
               .only_when(all_of({when_equals("axis", {"channel"}), when_zero("group")})),
           rotation_param()},
          [](const ParamValues& p, const Registry&) -> std::unique_ptr<Compressor> {
            const QuantConfig q{p.get_int("bits"), parse_quant_axis(p.get_choice("axis")), p.get_int("group")};
            const StreamSpec s{std::make_shared<QuantCodec>(q), policy_for(q, p.get_int("buffer"))};
            return make_stream_compressor(s, s, parse_rotation_kind(p.get_choice("rotation")));
          }};
}

}  // namespace kvlab::methods
