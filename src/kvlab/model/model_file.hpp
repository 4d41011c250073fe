#pragma once
// The kvlab-model v1 file (docs/model-format.md): a Llama-architecture decoder
// stored as HDF5, loaded into float32 matrices in PyTorch Linear layout
// [out × in] (row-major, so W·x is a dot product per output row).
//
// load_model() validates the whole file first (root attributes, every dataset's
// presence, shape and float element type) and then reads and checks every
// weight for finiteness. Every problem is a one-line kvlab::Error naming the
// file, the attribute or dataset path, and what was expected vs. found.
//
// Threading: like every HDF5 access in kvlab, call from one thread at a time.
#include <cstdint>
#include <string>
#include <vector>

#include "kvlab/core/rope.hpp"
#include "kvlab/core/types.hpp"
#include "kvlab/model/vocabulary.hpp"

namespace kvlab {

struct ModelConfig {
  std::string architecture = "llama";
  std::string model;  // free text
  int num_layers = 0, hidden_size = 0, num_heads = 0, num_kv_heads = 0, head_dim = 0;
  int intermediate_size = 0, vocab_size = 0;
  double rope_theta = 10000.0;
  RopeStyle rope_style = RopeStyle::Neox;  // Neox or Gptj
  double rms_norm_eps = 1e-6;
  bool tie_word_embeddings = false;

  int group_size() const { return num_heads / num_kv_heads; }
  int q_dim() const { return num_heads * head_dim; }
  int kv_dim() const { return num_kv_heads * head_dim; }
  std::uint64_t parameter_count() const;
};

// Checks the relations between the fields (positive sizes, GQA divisibility,
// even head_dim, rope style, eps); throws kvlab::Error prefixed with `where`.
void validate_config(const ModelConfig& c, const std::string& where);

struct LayerWeights {
  Vector input_norm, post_norm;  // [hidden]
  Matrix q_proj, k_proj, v_proj;  // [H·hd × hidden], [Hkv·hd × hidden] ×2
  Matrix o_proj;                  // [hidden × H·hd]
  Matrix gate_proj, up_proj;      // [ffn × hidden]
  Matrix down_proj;               // [hidden × ffn]
  Vector q_bias, k_bias, v_bias;  // empty when the file has none
};

struct ModelWeights {
  ModelConfig config;
  std::string path;  // the file it came from ("" when built in memory)
  Matrix embed_tokens;  // [vocab × hidden]
  std::vector<LayerWeights> layers;
  Vector norm;     // [hidden]
  Matrix lm_head;  // [vocab × hidden]; empty when tied
  Vocabulary vocab;  // optional (vocab_type); Kind::None when the file has none

  const Matrix& output_matrix() const { return config.tie_word_embeddings ? embed_tokens : lm_head; }
};

// Loads and validates a kvlab-model v1 file (with its vocabulary, if any).
ModelWeights load_model(const std::string& path);

// Reads only the root attributes (validated); cheap.
ModelConfig read_model_config(const std::string& path);

// A model with random weights (uniform, scaled 1/√fan_in; norms near 1), for
// tests and benchmarks. Deterministic in `seed`. `with_bias` adds q/k/v biases.
ModelWeights random_model(const ModelConfig& config, std::uint64_t seed, bool with_bias = false);

// Writes `weights` as a kvlab-model v1 file (float32, or float16 when fp16).
// Throws kvlab::Error naming the file on failure.
void write_model(const ModelWeights& weights, const std::string& path, bool fp16 = false);

}  // namespace kvlab
