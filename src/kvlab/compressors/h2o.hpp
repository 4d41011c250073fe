#pragma once
// H2O (heavy hitters + recent window) and SnapKV as building blocks, so that
// PyramidKV can put its per-layer budget schedule on top of either.
#include <memory>
#include <vector>

#include "kvlab/compressors/registry.hpp"
#include "kvlab/compressors/token_dropper.hpp"

namespace kvlab {

struct H2oConfig {
  double heavy = 0.1;     // fraction of the prompt length
  double recent = 0.1;    // fraction of the prompt length
  int heavy_tokens = 0;   // absolute, overrides `heavy` when > 0
  int recent_tokens = 0;  // absolute, overrides `recent` when > 0
  double pyramid_beta = 0;  // > 0: heavy budget follows pyramid_budgets (PyramidKV)
  TokenStore store;
};

struct SnapKvConfig {
  int window = 32;
  int kernel = 7;
  bool max_pool = true;
  int capacity = 1024;        // C, absolute tokens (window included)
  double capacity_ratio = 0;  // > 0: C = ⌊ratio · P⌋ per block instead
  double pyramid_beta = 0;    // > 0: C − w follows pyramid_budgets (PyramidKV)
  TokenStore store;
};

// Budget parameters (shared by h2o/snapkv and pyramidkv) and config readers.
std::vector<ParamSpec> h2o_params();
std::vector<ParamSpec> snapkv_params();
H2oConfig h2o_config(const ParamValues& p, const Registry& r, const std::string& method);
SnapKvConfig snapkv_config(const ParamValues& p, const Registry& r, const std::string& method);

std::unique_ptr<Compressor> make_h2o(const H2oConfig& cfg);
std::unique_ptr<Compressor> make_snapkv(const SnapKvConfig& cfg);

// SnapKV's pooling of the per-key votes: same-size output, kernel centred
// (kernel odd). max: maximum over the in-range neighbours (PyTorch max_pool1d
// pads with −inf); avg: sum of the in-range neighbours / kernel (avg_pool1d
// with zero padding and count_include_pad=True, its default).
std::vector<double> snapkv_pool(const std::vector<double>& votes, int kernel, bool max_pool);

}  // namespace kvlab
