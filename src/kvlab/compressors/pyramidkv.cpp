// pyramidkv: PyramidKV's per-layer budget schedule on top of SnapKV or H2O
// (REFERENCE: PyramidKV), docs/methods/droppers.md.
#include "kvlab/compressors/h2o.hpp"
#include "kvlab/compressors/registry.hpp"
#include "kvlab/core/error.hpp"

namespace kvlab::methods {

// The selectable part of the flat budget follows pyramid_budgets (layer 0 gets
// the most, the last layer the least, same total): C − w for SnapKV (the window
// is always kept on top), `heavy` for H2O (the recent window is kept on top).
MethodInfo pyramidkv() {
  std::vector<ParamSpec> params{{"base", ParamType::Choice, "snapkv", "selection the schedule is applied to", 0, 0,
                                 {"snapkv", "h2o"}},
                                {"beta", ParamType::Float, "20",
                                 "last layer's selectable budget = flat / beta (layer 0 gets 2*flat - flat/beta)", 1,
                                 1e9}};
  // Each base's parameters apply only with that base (and their own conditions).
  auto with_base = [&](std::vector<ParamSpec> base_params, const char* base) {
    for (auto& p : base_params) {
      ParamCondition c = when_equals("base", {base});
      if (!p.applies.always()) c = all_of({c, p.applies});
      params.push_back(std::move(p).only_when(std::move(c)));
    }
  };
  with_base(snapkv_params(), "snapkv");
  with_base(h2o_params(), "h2o");
  params.push_back(inner_param());
  return {"pyramidkv", "drop",
          "PyramidKV: SnapKV/H2O with a per-layer budget decreasing linearly with depth (same total)",
          std::move(params),
          [](const ParamValues& p, const Registry& r) -> std::unique_ptr<Compressor> {
            const double beta = p.get_float("beta");
            if (p.get_choice("base") == "h2o") {
              H2oConfig c = h2o_config(p, r, "pyramidkv");
              c.pyramid_beta = beta;
              return make_h2o(c);
            }
            SnapKvConfig c = snapkv_config(p, r, "pyramidkv");
            c.pyramid_beta = beta;
            return make_snapkv(c);
          }};
}

}  // namespace kvlab::methods
