// Explicit registration of every built-in method and of the presets in
// configs/presets.yaml (compiled in by CMake).
#include <yaml-cpp/yaml.h>

#include "kvlab/compressors/registry.hpp"
#include "kvlab/core/build_info.hpp"
#include "kvlab/core/error.hpp"

// Every built-in method, one line each, in `kvlab list` order. X(NAME) names a
// function `MethodInfo kvlab::methods::NAME()` defined in the method's own file
// (docs/adding-a-method.md): this list both declares and registers it.
#define KVLAB_BUILTIN_METHODS(X) \
  X(fp16)                        \
  X(uniform)                     \
  X(kcvt)                        \
  X(kivi)                        \
  X(h2o)                         \
  X(streaming)                   \
  X(snapkv)                      \
  X(pyramidkv)                   \
  X(tova)                        \
  X(knorm)                       \
  X(keydiff)                     \
  X(lagkv)                       \
  X(expected_attention)          \
  X(chunkkv)                     \
  X(think)                       \
  X(leverage)                    \
  X(random)                      \
  X(adakv)                       \
  X(criticalkv)                  \
  X(qjl)                         \
  X(gear)                        \
  X(gear_l)                      \
  X(outlier_quant)               \
  X(gear_kcvt)                   \
  X(gear_l_kcvt)                 \
  X(kvquant)                     \
  X(turboquant)                  \
  X(polarquant)                  \
  X(mikv)                        \
  X(skvq)

namespace kvlab {

namespace methods {
#define KVLAB_DECLARE_METHOD(name) MethodInfo name();
KVLAB_BUILTIN_METHODS(KVLAB_DECLARE_METHOD)
#undef KVLAB_DECLARE_METHOD
}  // namespace methods

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
#define KVLAB_ADD_METHOD(name) r.add(methods::name());
  KVLAB_BUILTIN_METHODS(KVLAB_ADD_METHOD)
#undef KVLAB_ADD_METHOD
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
