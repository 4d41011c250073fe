// kcvt: keys per-channel over the whole sequence, values per-token over the
// whole row (the GEAR paper's KCVT backbone); optionally rotated (docs/methods/rotation.md).
#include "kvlab/compressors/registry.hpp"
#include "kvlab/compressors/quant_codec.hpp"
#include "kvlab/compressors/rotated_codec.hpp"

namespace kvlab::methods {

MethodInfo kcvt() {
  return {"kcvt",
          "quant",
          "Keys per-channel (whole prompt / buffer blocks), values per-token (whole row)",
          {{"bits", ParamType::Int, "2", "bits per element", 1, 8},
           {"buffer", ParamType::Int, "64", "decode keys kept FP16 until this many form a per-channel segment",
            1, 65536},
           rotation_param()},
          [](const ParamValues& p, const Registry&) -> std::unique_ptr<Compressor> {
            const int bits = p.get_int("bits");
            const StreamSpec keys{std::make_shared<QuantCodec>(QuantConfig{bits, QuantAxis::PerChannel, 0}),
                                  {1, p.get_int("buffer"), 0}};
            const StreamSpec values{std::make_shared<QuantCodec>(QuantConfig{bits, QuantAxis::PerToken, 0}),
                                    {1, 1, 0}};
            return make_stream_compressor(keys, values, parse_rotation_kind(p.get_choice("rotation")));
          }};
}

}  // namespace kvlab::methods
