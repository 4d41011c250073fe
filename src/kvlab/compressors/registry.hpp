#pragma once
// The registry: every method with its documented parameters, plus named presets
// (configs/presets.yaml, compiled in). Methods are registered explicitly in
// builtin_methods.cpp — no static self-registration a linker could drop.
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "kvlab/compressors/compressor.hpp"
#include "kvlab/compressors/params.hpp"

namespace YAML {
class Node;
}

namespace kvlab {

class Registry;

struct MethodInfo {
  std::string name;
  std::string family;   // baseline | quant | gear | drop | composite
  std::string summary;  // one line for `kvlab list`
  std::vector<ParamSpec> params;
  // Builds the compressor from validated values; may throw kvlab::Error for
  // constraints between parameters (e.g. residual % group != 0).
  std::function<std::unique_ptr<Compressor>(const ParamValues&, const Registry&)> make;
};

// A spec resolved against the registry: method, every parameter (defaults filled
// in) and the canonical spec string.
struct ResolvedSpec {
  const MethodInfo* method = nullptr;
  ParamValues values;
  std::string canonical;
};

class Registry {
 public:
  // The built-in methods and presets.
  static const Registry& global();

  void add(MethodInfo info);                                  // rejects duplicates
  void add_preset(std::string name, std::string spec, std::string doc = {});

  const std::vector<MethodInfo>& methods() const { return methods_; }
  const MethodInfo* find(std::string_view name) const;
  const MethodInfo& get(std::string_view name) const;  // throws with "did you mean"

  struct Preset {
    std::string name, spec, doc;
  };
  const std::vector<Preset>& presets() const { return presets_; }

  // Accepts `method:p=v,...`, `preset` or `preset:p=v` (overrides the preset).
  ResolvedSpec resolve(std::string_view spec) const;
  ResolvedSpec resolve(const YAML::Node& node) const;  // a string or {method: m, p: v, ...}
  std::unique_ptr<Compressor> build(std::string_view spec) const;
  std::unique_ptr<Compressor> build(const YAML::Node& node) const;
  std::unique_ptr<Compressor> build(const ResolvedSpec& resolved) const;
  std::string canonical(std::string_view spec) const { return resolve(spec).canonical; }

 private:
  // `soft`: parameters a preset set (not the user): dropped silently where they
  // have no effect, where a parameter the user set is an error.
  ResolvedSpec resolve_text(const SpecText& text, const std::string& where, int depth,
                            const std::set<std::string>& soft = {}) const;

  std::vector<MethodInfo> methods_;
  std::vector<Preset> presets_;
};

// Converts a YAML scalar/map compressor description to spec text.
SpecText spec_text_from_yaml(const YAML::Node& node, const std::string& where);

}  // namespace kvlab
