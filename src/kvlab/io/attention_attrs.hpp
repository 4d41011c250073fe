#pragma once
// Reads and validates the optional attention description of a kvdump
// (docs/dump-format.md, "Attention and RoPE"): attn_scale,
// attn_logit_softcap, rotary_dim, /rope_inv_freq, rope_attention_scaling and,
// per layer, sliding_window, rope_inv_freq and rope_attention_scaling.
#include "kvlab/io/dump_info.hpp"
#include "kvlab/io/hdf5_checked.hpp"

namespace kvlab::io {

// Fills info.attn_scale, attn_logit_softcap, layer_attention and extends
// info.rope (set from rope_theta and rope_style by the caller, or unset) with
// the frequencies, rotary_dim and scaling. Needs num_layers and head_dim.
// Throws a one-line kvlab::Error naming the file and the attribute on the
// first violation.
void read_attention_attributes(const CheckedFile& file, DumpInfo& info);

}  // namespace kvlab::io
