// adakv: one layer's budget allocated across its kv heads by score, with a
// per-head safeguard (Feng et al. 2024, "Ada-KV: Optimizing KV Cache Eviction
// by Adaptive Budget Allocation"), docs/methods/eviction.md.
#include "kvlab/compressors/head_adaptive.hpp"

namespace kvlab::methods {

MethodInfo adakv() {
  std::vector<ParamSpec> params = head_adaptive_base_params();
  for (ParamSpec& p : eviction_budget_params()) params.push_back(std::move(p));
  params.push_back(eviction_recent_param());
  params.push_back({"alpha", ParamType::Float, "0.2", "safeguard: every head keeps at least floor(alpha*B) tokens", 0, 1});
  params.push_back(inner_param());
  return {"adakv", "drop",
          "Ada-KV: the layer keeps H*B tokens, allocated across its kv heads by the base's scores (safeguard alpha)",
          std::move(params), [](const ParamValues& p, const Registry& r) -> std::unique_ptr<Compressor> {
            const std::vector<ScorerKind> bases = head_adaptive_bases();
            HeadAdaptiveConfig c;
            c.method = "adakv";
            c.base = chosen_base(bases, p);
            c.make_scorer = c.base.make(p);
            c.budget = eviction_budget_from(p);
            c.alpha = p.get_float("alpha");
            c.store = token_store_from(p, r, "adakv");
            return make_head_adaptive(std::move(c));
          }};
}

}  // namespace kvlab::methods
