// kvlab.AttentionRule, the Python class of core/attention_rule.hpp: what a
// layer's attention computes from q and k (the dump attributes attn_scale,
// attn_logit_softcap and sliding_window), for compress() and the states of
// methods that score tokens by attention.
#include <fmt/format.h>
#include <pybind11/stl.h>

#include <cmath>
#include <optional>

#include "bindings.hpp"
#include "kvlab/core/attention_rule.hpp"
#include "kvlab/core/error.hpp"

namespace kvlab::python {

namespace {

AttentionRule make_rule(std::optional<double> scale, std::optional<double> softcap, std::optional<int> window) {
  AttentionRule r;
  if (scale) {
    if (!(std::isfinite(*scale) && *scale > 0)) fail("AttentionRule: scale must be a positive finite number, found {}", *scale);
    r.scale = *scale;
  }
  if (softcap) {
    if (!(std::isfinite(*softcap) && *softcap > 0))
      fail("AttentionRule: softcap must be a positive finite number, found {}", *softcap);
    r.softcap = *softcap;
  }
  if (window) {
    if (*window < 1) fail("AttentionRule: window must be >= 1 (None: full causal attention), found {}", *window);
    r.window = *window;
  }
  return r;
}

}  // namespace

void bind_attention_rule(py::module_& m) {
  using namespace py::literals;
  py::class_<AttentionRule>(m, "AttentionRule",
                            "A layer's attention: logits s = scale·q·k (scale None: 1/sqrt(head_dim)), soft-capped "
                            "to softcap·tanh(s/softcap) when softcap is set, over the last `window` positions when "
                            "window is set (else every earlier one). The dump attributes attn_scale, "
                            "attn_logit_softcap and sliding_window (docs/dump-format.md).")
      .def(py::init(&make_rule), py::kw_only(), "scale"_a = py::none(), "softcap"_a = py::none(),
           "window"_a = py::none())
      .def_property_readonly("scale", [](const AttentionRule& r) { return r.scale > 0 ? py::cast(r.scale) : py::none(); })
      .def_property_readonly("softcap",
                             [](const AttentionRule& r) { return r.capped() ? py::cast(r.softcap) : py::none(); })
      .def_property_readonly("window", [](const AttentionRule& r) { return r.window > 0 ? py::cast(r.window) : py::none(); })
      .def("scale_for", &AttentionRule::scale_for, "head_dim"_a, "the factor on q·k for this head size")
      .def("__eq__", [](const AttentionRule& a, const AttentionRule& b) {
        return a.scale == b.scale && a.softcap == b.softcap && a.window == b.window;
      })
      .def("__repr__", [](const AttentionRule& r) {
        auto opt = [](bool set, auto v) { return set ? fmt::format("{}", v) : std::string("None"); };
        return fmt::format("kvlab.AttentionRule(scale={}, softcap={}, window={})", opt(r.scale > 0, r.scale),
                           opt(r.capped(), r.softcap), opt(r.window > 0, r.window));
      });
}

}  // namespace kvlab::python
