#pragma once
// What a state is built for (BlockContext) from the keyword arguments that
// compress(), Compressor.new_state/new_layer_state and calibrate() share,
// checked so that the core only ever sees a consistent context.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "kvlab/compressors/compressor.hpp"

namespace kvlab::python {

struct ContextArgs {
  int layer = 0;
  int num_layers = 1;
  int num_kv_heads = 1;
  int head_dim = 0;
  int group_size = 1;
  int prompt_len = 0;
  int max_tokens = 0;
  std::uint64_t seed = 0;
  std::optional<double> rope_theta;       // set: the tensors carry RoPE (as a dump's rope_theta)
  std::optional<std::string> rope_style;  // neox | gptj
  AttentionRule attention;                // scale, soft-cap, window (default: 1/sqrt(d), none, none)
};

// Throws kvlab::Error (ValueError) naming the argument that is out of range.
BlockContext make_context(const ContextArgs& args);

// Throws kvlab::Error when `compressor` cannot run without queries / RoPE
// metadata it is not given (as check_compatible does for a dump).
void check_needs(const Compressor& compressor, const BlockContext& ctx, bool have_queries);

// A compressor's per-layer calibration, as Compressor.calibrate() returns it
// (null for methods that calibrate nothing).
struct Calibration {
  std::shared_ptr<const LayerCalibration> data;
  std::string spec;  // the compressor that made it
  int layer = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
};

}  // namespace kvlab::python
