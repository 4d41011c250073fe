#pragma once
// A plain CPU forward pass of a Llama-architecture decoder (HF Llama semantics,
// float32 compute) for one sequence, whose per-layer KV cache lives in
// compressor states — one per (layer, kv head), or one per layer for
// layer-scoped compressors (make_layer_state) — so every compression method
// plugs in unchanged.
//
// Semantics (docs/model-in-the-loop.md):
//  - prefill(tokens[0, P)): the prompt is processed at once with exact causal
//    attention over its own fresh K/V (as an inference engine does), then each
//    state receives the prompt's K, V (after RoPE) and its GQA group's queries.
//  - step(token): one token at position t = position(). Its k/v are appended
//    to the state first (the token attends to itself), then each query head h
//    of kv head h / (H/Hkv) scores the cache with state.key_logits(q) (scaled
//    by 1/√hd), takes the softmax over present positions only (evicted
//    positions are excluded) and mixes state.view().values.
//  - RMSNorm x·rsqrt(mean(x²)+eps)·w; RoPE neox (rotate-half) or gptj
//    (interleaved) with inv_freq_i = theta^(-2i/hd), angles computed in float32
//    exactly as transformers does; MLP down(silu(gate(x))·up(x)); final norm;
//    logits = lm_head(h) (embed_tokens when tied).
//
// Deterministic: OpenMP splits matrix-vector products into fixed row chunks
// and attention by kv head, so results do not depend on the thread count.
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "kvlab/compressors/compressor.hpp"
#include "kvlab/model/model_file.hpp"

namespace kvlab {

struct ForwardOptions {
  int max_tokens = 0;  // capacity hint for the states (prompt + decode)
  std::uint64_t seed = 0;
  int threads = 1;
};

class LlamaForward {
 public:
  // `weights` and `compressor` must outlive the forward.
  LlamaForward(const ModelWeights& weights, const Compressor& compressor, const ForwardOptions& options);
  ~LlamaForward();
  LlamaForward(const LlamaForward&) = delete;
  LlamaForward& operator=(const LlamaForward&) = delete;

  // Processes the prompt (at least one token). When all_logits / all_hidden
  // are given they receive every position's logits [P × vocab] and final-norm
  // hidden states [P × hidden]. Must be the first call.
  void prefill(std::span<const std::int64_t> tokens, Matrix* all_logits = nullptr, Matrix* all_hidden = nullptr);
  // Feeds one token at position position().
  void step(std::int64_t token);

  int position() const { return position_; }  // tokens fed so far
  const ModelConfig& config() const { return w_.config; }
  // Of the last token fed: next-token logits [vocab], final-norm hidden state
  // [hidden], and per layer the attention output before o_proj [H × hd].
  const RowVector& logits() const { return logits_; }
  const RowVector& hidden() const { return hidden_; }
  const Matrix& attention_output(int layer) const { return attn_[static_cast<std::size_t>(layer)]; }

  const CacheReader& state(int layer, int kv_head) const;
  BitCount bits() const;  // all states together

 private:
  struct Scratch;
  void check_token(std::int64_t token) const;
  void apply_rope(float* x, int heads, int position) const;
  void finish(const RowVector& h);

  const ModelWeights& w_;
  const Compressor& compressor_;
  ForwardOptions opt_;
  int position_ = 0;
  std::vector<float> inv_freq_;  // [hd/2], float32 as transformers computes it
  // The caches, per layer: one state per kv head for block-scoped
  // compressors, one for the whole layer for layer-scoped ones.
  std::vector<std::vector<std::unique_ptr<LayerCacheState>>> units_;
  std::vector<const CacheReader*> heads_;  // layer-major: layer·Hkv + kv_head
  std::vector<Matrix> attn_;
  RowVector logits_, hidden_;
  std::unique_ptr<Scratch> scratch_;
};

// y = W·x for row-major W [out × in], split into fixed chunks of rows so the
// result is the same for any thread count.
void matvec(const Matrix& w, const float* x, float* y, int threads);
// Y = X·Wᵀ for X [n × in], W [out × in] → Y [n × out], chunked the same way.
void matmul_transposed(const Matrix& x, const Matrix& w, Matrix& y, int threads);

}  // namespace kvlab
