#pragma once
// Whether the model-in-the-loop forward (llama_forward.hpp: q·k/√head_dim,
// no logit soft-cap, full causal attention, RoPE from rope_theta over the
// whole head, no attention scaling) computes the attention a dump describes
// (docs/dump-format.md, "Attention and RoPE"). A kvlab-model file cannot
// express anything else, so a dump that says otherwise is refused rather than
// compared with a different attention.
#include "kvlab/io/dump_info.hpp"
#include "kvlab/model/model_file.hpp"

namespace kvlab {

// Throws a one-line kvlab::Error naming the dump, the layer and the
// attribute the forward cannot reproduce. `positions`: how many positions
// the forward attends over (a sliding window at least that wide is no window).
void check_forward_attention(const DumpInfo& dump, const ModelConfig& model, int positions);

}  // namespace kvlab
