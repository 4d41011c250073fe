#pragma once
// The layer-scoped state behind adakv and criticalkv: one LayerCacheState per
// layer holding every kv head's kept tokens, a base TokenScorer per head, and
// a budget shared by the layer's heads (head_budget.hpp),
// docs/methods/eviction.md.
#include <memory>
#include <string>
#include <vector>

#include "kvlab/compressors/registry.hpp"
#include "kvlab/compressors/scored_dropper.hpp"

namespace kvlab {

struct HeadAdaptiveConfig {
  std::string method;
  ScorerKind base;
  ScorerFactory make_scorer;
  EvictionBudget budget;  // B per head on average; the layer keeps H·B
  bool adaptive = true;   // allocate H·B across heads (false: B in every head)
  double alpha = 0.2;     // safeguard: each head keeps at least ⌊alpha·B⌋
  bool critical = false;  // CriticalKV's two-stage selection with ‖v‖₁
  double first_stage = 0.5;
  double epsilon = 1e-4;
  TokenStore store;
};

std::unique_ptr<Compressor> make_head_adaptive(HeadAdaptiveConfig cfg);

// The bases the wrappers accept (snapkv first: the papers' default).
std::vector<ScorerKind> head_adaptive_bases();
// `base` plus every base's score parameters, each only with its base.
std::vector<ParamSpec> head_adaptive_base_params();
// The chosen base and its scorer factory.
const ScorerKind& chosen_base(const std::vector<ScorerKind>& bases, const ParamValues& p);

}  // namespace kvlab
