#pragma once
// Deterministic synthetic kvdumps with controllable structure (docs/synth.md).
//
// Every tensor is a function of (options, layer, head) only: random streams
// come from Rng::for_block(seed, layer, head, purpose), so the output is
// bit-identical for any thread count. Generation is parallel over kv heads
// (OpenMP); HDF5 writing happens on the calling thread.
#include <cstdint>
#include <string>
#include <vector>

#include "kvlab/core/rope.hpp"
#include "kvlab/io/dump_info.hpp"

namespace kvlab {

class Progress;

struct SynthOptions {
  std::string preset = "tiny";  // tiny | small | llama2-7b | llama3-8b
  // Shape; 0 = take the preset's value.
  int num_layers = 0, num_heads = 0, num_kv_heads = 0, head_dim = 0, seq_len = 0, prompt_len = 0;
  std::uint64_t seed = 0;
  int outlier_channels = -1;   // persistent key outlier channels per layer; -1 = max(1, head_dim / 32)
  float outlier_scale = 6.0f;  // multiplier of those channels (1 = no outliers)
  bool rope = true;
  double rope_theta = 0;       // 0 = the preset's (10000; 500000 for llama3-8b)
  RopeStyle rope_style = RopeStyle::Neox;
  bool sink = true;            // attention-sink first token
  float lowrank_share = 0.5f;  // fraction of (pre-outlier) key energy in a rank-max(1, d/16) part, [0, 1]
  float query_peakiness = 6.0f;  // logit boost (nats) of each query's few target keys; 0 = none
  bool with_queries = true;
  bool float16 = true;         // store float16 (else float32)
  // Attention description written with the dump (docs/dump-format.md); the
  // tensors do not depend on it. 0 = attribute not written (the defaults).
  double attn_scale = 0;            // factor on q·k (default 1/sqrt(head_dim))
  double attn_logit_softcap = 0;    // logits become c·tanh(s/c)
  int sliding_window = 0;           // on window_layers (every layer when empty)
  std::vector<int> window_layers;
};

std::vector<std::string> synth_preset_names();
// Fills preset fields and checks every option; throws kvlab::Error naming the
// option on an invalid value or an unknown preset.
SynthOptions resolve_synth_options(const SynthOptions& options);
// The DumpInfo a resolved SynthOptions produces (path empty, has_tokens true).
DumpInfo synth_info(const SynthOptions& resolved);
// One layer's tensors, float32, before any float16 rounding. `threads` = 0
// uses OpenMP's default; the result does not depend on it.
LayerData synth_layer(const SynthOptions& resolved, int layer, int threads = 0);
std::vector<std::int64_t> synth_tokens(const SynthOptions& resolved);

struct SynthResult {
  DumpInfo info;
  std::uintmax_t bytes = 0;
  double seconds = 0;
};
// Resolves `options` and writes the whole dump to `path`, one layer at a time.
SynthResult write_synth_dump(const std::string& path, const SynthOptions& options, int threads = 0,
                             Progress* progress = nullptr);  // advances once per layer written

// Rotates each row t of x (position first_position + t) in place by RoPE with
// base theta: neox pairs channel i with i + d/2, gptj pairs 2i with 2i+1; the
// pair i turns by angle pos · theta^(-2i/d). inverse = true undoes it.
void apply_rope(Matrix& x, double theta, RopeStyle style, int first_position = 0, bool inverse = false);

}  // namespace kvlab
