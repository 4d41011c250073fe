// kivi: keys per-channel in groups of G tokens, values per-token in groups of G
// channels, with KIVI's FP16 residual (REFERENCE: KIVI); optionally rotated (docs/methods/rotation.md).
#include "kvlab/compressors/registry.hpp"
#include "kvlab/compressors/rotated_codec.hpp"
#include "kvlab/core/error.hpp"
#include "kvlab/compressors/quant_codec.hpp"

namespace kvlab::methods {

MethodInfo kivi() {
  return {"kivi",
          "quant",
          "KIVI: per-channel keys and per-token values, FP16 residual of R tokens",
          {{"bits", ParamType::Int, "2", "bits per element", 1, 8},
           {"group", ParamType::Int, "32", "group size (tokens for keys, channels for values)", 1, 65536},
           {"residual", ParamType::Int, "128", "R: FP16 residual length (a multiple of group)", 0, 65536},
           rotation_param()},
          [](const ParamValues& p, const Registry&) -> std::unique_ptr<Compressor> {
            const int bits = p.get_int("bits"), group = p.get_int("group"), residual = p.get_int("residual");
            if (residual % group != 0) fail("residual ({}) must be a multiple of group ({})", residual, group);
            // Keys: an R-token block is quantized once R keys have accumulated (R = 0: groups of G).
            const int key_block = residual == 0 ? group : residual;
            const StreamSpec keys{std::make_shared<QuantCodec>(QuantConfig{bits, QuantAxis::PerChannel, group}),
                                  {key_block, key_block, 0}};
            // Values: the R most recent stay FP16; older ones are quantized one token at a time.
            const StreamSpec values{std::make_shared<QuantCodec>(QuantConfig{bits, QuantAxis::PerToken, group}),
                                    {1, 1, residual}};
            return make_stream_compressor(keys, values, parse_rotation_kind(p.get_choice("rotation")));
          }};
}

}  // namespace kvlab::methods
