// streaming: StreamingLLM, attention sinks + sliding window (REFERENCE:
// StreamingLLM), docs/methods/droppers.md.
#include <algorithm>

#include "kvlab/compressors/registry.hpp"
#include "kvlab/compressors/token_dropper.hpp"

namespace kvlab {

namespace {

struct StreamingConfig {
  int sinks = 4;
  double window = 0.2;  // total budget as a fraction of the prompt: window = ⌊window·P⌋ − sinks
  int window_tokens = 0;
  TokenStore store;
};

// Keeps positions [0, sinks) and the last W positions. Its kept set is a
// closed-form function of the position count, so it stores no index.
class StreamingState : public TokenDropperState {
 public:
  StreamingState(const BlockContext& ctx, const StreamingConfig& cfg)
      : TokenDropperState(ctx, cfg.store, /*index_free=*/true), cfg_(cfg) {}

  void prefill(ConstMatrixRef keys, ConstMatrixRef values, const QueryGroup&) override {
    const int p = static_cast<int>(keys.rows());
    window_ = cfg_.window_tokens > 0 ? cfg_.window_tokens
                                     : std::max(1, budget_count(cfg_.window, 0, p) - cfg_.sinks);
    store_tokens(keys, values);
    for (int i = cfg_.sinks; i < p - window_; ++i) evict(i);
  }

  void append(ConstRowRef key, ConstRowRef value, const QueryGroup&) override {
    const int t = size();
    store_token(key, value);
    const int leaving = t - window_;
    if (leaving >= cfg_.sinks) evict(leaving);
  }

 private:
  StreamingConfig cfg_;
  int window_ = 1;
};

class StreamingCompressor : public Compressor {
 public:
  explicit StreamingCompressor(StreamingConfig cfg) : cfg_(std::move(cfg)) {}
  std::unique_ptr<CacheState> new_state(const BlockContext& ctx) const override {
    return std::make_unique<StreamingState>(ctx, cfg_);
  }

 private:
  StreamingConfig cfg_;
};

}  // namespace

namespace methods {

MethodInfo streaming() {
  return {"streaming", "drop", "StreamingLLM: keep the first `sinks` tokens and a sliding window of the newest",
          {{"sinks", ParamType::Int, "4", "attention-sink tokens kept at the start", 0, 1 << 20},
           ParamSpec{"window", ParamType::Float, "0.2",
                     "total budget as a fraction of the prompt: the window holds max(1, floor(window*P) - sinks) tokens",
                     0, 1}
               .only_when(when_zero("window_tokens")),
           {"window_tokens", ParamType::Int, "0", "absolute window length (overrides window when > 0)", 0, 1 << 24},
           inner_param()},
          [](const ParamValues& p, const Registry& r) -> std::unique_ptr<Compressor> {
            StreamingConfig c;
            c.sinks = p.get_int("sinks");
            c.window = p.get_float("window");
            c.window_tokens = p.get_int("window_tokens");
            c.store = token_store_from(p, r, "streaming");
            return std::make_unique<StreamingCompressor>(c);
          }};
}

}  // namespace methods

}  // namespace kvlab
