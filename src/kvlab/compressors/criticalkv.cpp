// criticalkv: two-stage selection by attention, then attention times the
// value's L1 norm (the output-perturbation bound), within budgets allocated
// across the layer's kv heads (Feng et al. 2025, "Identify Critical KV Cache in
// LLM Inference from an Output Perturbation Perspective"),
// docs/methods/eviction.md.
#include "kvlab/compressors/head_adaptive.hpp"

namespace kvlab::methods {

MethodInfo criticalkv() {
  std::vector<ParamSpec> params = head_adaptive_base_params();
  for (ParamSpec& p : eviction_budget_params()) params.push_back(std::move(p));
  params.push_back(eviction_recent_param());
  params.push_back({"adaptive", ParamType::Bool, "true",
                    "allocate the layer's H*B across heads as Ada-KV (CriticalAdaKV); false: B in every head"});
  params.push_back(ParamSpec{"alpha", ParamType::Float, "0.2",
                             "safeguard: every head keeps at least floor(alpha*B) tokens", 0, 1}
                       .only_when(when_equals("adaptive", {"true"})));
  params.push_back({"first_stage", ParamType::Float, "0.5",
                    "fraction of a head's budget chosen by the base score alone (stage 1)", 0, 1});
  params.push_back({"epsilon", ParamType::Float, "0.0001", "stage-2 score (score + epsilon)*||v||_1", 0, 1});
  params.push_back(inner_param());
  return {"criticalkv", "drop",
          "CriticalKV: stage 1 by the base score, stage 2 by score*||v||_1, in budgets allocated across kv heads",
          std::move(params), [](const ParamValues& p, const Registry& r) -> std::unique_ptr<Compressor> {
            const std::vector<ScorerKind> bases = head_adaptive_bases();
            HeadAdaptiveConfig c;
            c.method = "criticalkv";
            c.base = chosen_base(bases, p);
            c.make_scorer = c.base.make(p);
            c.budget = eviction_budget_from(p);
            c.adaptive = p.get_bool("adaptive");
            c.alpha = p.get_float("alpha");
            c.critical = true;
            c.first_stage = p.get_float("first_stage");
            c.epsilon = p.get_float("epsilon");
            c.store = token_store_from(p, r, "criticalkv");
            return make_head_adaptive(std::move(c));
          }};
}

}  // namespace kvlab::methods
