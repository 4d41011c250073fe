// Explicit registration of every built-in method and of the presets in
// configs/presets.yaml (compiled in by CMake).
#include <yaml-cpp/yaml.h>

#include "kvlab/compressors/methods.hpp"
#include "kvlab/core/build_info.hpp"
#include "kvlab/core/error.hpp"

namespace kvlab {

namespace {

void add_presets(Registry& registry, const std::string& text) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    fail("configs/presets.yaml: {}", e.what());
  }
  for (const auto& kv : root["presets"]) {
    const std::string name = kv.first.as<std::string>();
    const YAML::Node& body = kv.second;
    const std::string spec = body.IsMap() ? body["spec"].as<std::string>() : body.as<std::string>();
    const std::string doc = body.IsMap() && body["doc"] ? body["doc"].as<std::string>() : std::string();
    registry.add_preset(name, spec, doc);
  }
}

Registry make_global() {
  Registry r;
  r.add(methods::fp16());
  r.add(methods::uniform());
  r.add(methods::kcvt());
  r.add(methods::kivi());
  for (auto m : {methods::h2o, methods::streaming, methods::snapkv, methods::pyramidkv, methods::qjl}) r.add(m());
  for (auto f : {methods::gear, methods::gear_l, methods::outlier_quant, methods::gear_kcvt, methods::gear_l_kcvt, methods::kvquant}) r.add(f());
  add_presets(r, build_info::presets_yaml);
  for (const auto& p : r.presets()) r.resolve(p.spec);  // a broken preset fails at start, loudly
  return r;
}

}  // namespace

const Registry& Registry::global() {
  static const Registry registry = make_global();
  return registry;
}

}  // namespace kvlab
