// methods(), presets(), canonical(): the registry as `kvlab list --json`
// prints it (the same keys and values; unbounded ranges are None).
#include <pybind11/stl.h>

#include <cmath>

#include "bindings.hpp"
#include "kvlab/compressors/registry.hpp"

namespace kvlab::python {

namespace {

py::object bound(double v) { return std::isfinite(v) ? py::object(py::float_(v)) : py::object(py::none()); }

py::dict param_dict(const ParamSpec& p) {
  py::dict d;
  d["name"] = p.name;
  d["type"] = param_type_name(p.type);
  d["default"] = p.default_value;
  d["doc"] = p.doc;
  d["min"] = bound(p.min);
  d["max"] = bound(p.max);
  d["choices"] = py::cast(p.choices);
  d["range"] = p.range_text();
  d["applies_when"] = p.applies.always() ? py::object(py::none()) : py::object(py::str(p.applies.text));
  return d;
}

py::list methods() {
  py::list out;
  for (const MethodInfo& m : Registry::global().methods()) {
    py::dict d;
    d["name"] = m.name;
    d["family"] = m.family;
    d["summary"] = m.summary;
    py::list params;
    for (const ParamSpec& p : m.params) params.append(param_dict(p));
    d["params"] = params;
    out.append(d);
  }
  return out;
}

py::list presets() {
  const Registry& reg = Registry::global();
  py::list out;
  for (const Registry::Preset& p : reg.presets()) {
    py::dict d;
    d["name"] = p.name;
    d["spec"] = p.spec;
    d["canonical"] = reg.canonical(p.spec);
    d["doc"] = p.doc;
    out.append(d);
  }
  return out;
}

}  // namespace

void bind_registry(py::module_& m) {
  m.def("methods", &methods,
        "Every registered method: name, family, summary and parameters (name, type, default, doc, min, max, "
        "choices, range, applies_when), as `kvlab list --json` prints them.");
  m.def("presets", &presets, "The named presets: name, spec, canonical spec and doc.");
  m.def(
      "canonical", [](const std::string& spec) { return Registry::global().canonical(spec); }, py::arg("spec"),
      "The canonical text of a spec or preset (every applicable parameter, in declared order); raises ValueError "
      "for an unknown method, parameter or value, with kvlab's suggestion.");
}

}  // namespace kvlab::python
