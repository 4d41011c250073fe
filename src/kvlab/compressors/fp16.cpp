// fp16: the uncompressed baseline (every token kept as recorded).
#include "kvlab/compressors/registry.hpp"
#include "kvlab/compressors/stream_state.hpp"

namespace kvlab::methods {

namespace {
class Fp16Compressor : public Compressor {
 public:
  std::unique_ptr<CacheState> new_state(const BlockContext& ctx) const override {
    return std::make_unique<Fp16CacheState>(ctx);
  }
};
}  // namespace

MethodInfo fp16() {
  return {"fp16", "baseline", "Uncompressed FP16 cache (identity; the baseline of every ratio)", {},
          [](const ParamValues&, const Registry&) { return std::make_unique<Fp16Compressor>(); }};
}

}  // namespace kvlab::methods
