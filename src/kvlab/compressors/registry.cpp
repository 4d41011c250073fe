#include "kvlab/compressors/registry.hpp"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>

#include "kvlab/core/error.hpp"

namespace kvlab {

namespace {

std::vector<std::string> names_of(const std::vector<ParamSpec>& params) {
  std::vector<std::string> out;
  for (const auto& p : params) out.push_back(p.name);
  return out;
}

std::string yaml_scalar_text(const YAML::Node& node, const std::string& where) {
  if (!node.IsScalar()) fail("{}: expected a scalar value", where);
  return node.Scalar();
}

}  // namespace

void Registry::add(MethodInfo info) {
  if (find(info.name) != nullptr) fail("registry: method '{}' registered twice", info.name);
  methods_.push_back(std::move(info));
}

void Registry::add_preset(std::string name, std::string spec, std::string doc) {
  if (find(name) != nullptr) fail("preset '{}' has the name of a method", name);
  for (const auto& p : presets_)
    if (p.name == name) fail("preset '{}' defined twice", name);
  presets_.push_back({std::move(name), std::move(spec), std::move(doc)});
}

const MethodInfo* Registry::find(std::string_view name) const {
  for (const auto& m : methods_)
    if (m.name == name) return &m;
  return nullptr;
}

const MethodInfo& Registry::get(std::string_view name) const {
  if (const MethodInfo* m = find(name)) return *m;
  std::vector<std::string> all;
  for (const auto& m : methods_) all.push_back(m.name);
  for (const auto& p : presets_) all.push_back(p.name);
  fail("unknown compressor '{}'{}; valid methods: {}", name, did_you_mean(name, all),
       fmt::join(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(methods_.size()), ", "));
}

ResolvedSpec Registry::resolve_text(const SpecText& text, const std::string& where, int depth,
                                    const std::set<std::string>& soft) const {
  if (depth > 8) fail("{}: presets or nested specs nest too deeply", where);
  // A preset expands to its spec; parameters given here override the preset's.
  for (const auto& preset : presets_) {
    if (preset.name != text.method) continue;
    SpecText merged = parse_spec_text(preset.spec);
    std::set<std::string> preset_set;
    for (const auto& kv : merged.params) preset_set.insert(kv.first);
    for (const auto& [name, value] : text.params) {
      preset_set.erase(name);
      auto it = std::find_if(merged.params.begin(), merged.params.end(),
                             [&name = name](const auto& kv) { return kv.first == name; });
      if (it != merged.params.end())
        it->second = value;
      else
        merged.params.emplace_back(name, value);
    }
    return resolve_text(merged, where, depth + 1, preset_set);
  }

  const MethodInfo& method = [&]() -> const MethodInfo& {
    try {
      return get(text.method);
    } catch (const Error& e) {
      fail("{}: {}", where, e.what());
    }
  }();
  std::map<std::string, std::string> values;
  for (const auto& p : method.params) values[p.name] = p.default_value;
  for (const auto& [name, value] : text.params) {
    auto it = std::find_if(method.params.begin(), method.params.end(),
                           [&name = name](const ParamSpec& p) { return p.name == name; });
    if (it == method.params.end())
      fail("{}: unknown parameter '{}' for {}{}; valid: {}", where, name, method.name,
           did_you_mean(name, names_of(method.params)), fmt::join(names_of(method.params), ", "));
    std::string canonical = canonical_param_value(*it, value, where);
    if (it->type == ParamType::Spec) canonical = resolve_text(parse_spec_text(value), where, depth + 1).canonical;
    values[name] = canonical;
  }
  // Parameters with no effect in this configuration: an error when the user set
  // one, and left out of the canonical spec either way.
  const ParamValues all(values);
  std::set<std::string> inapplicable;
  for (const auto& p : method.params) {
    if (p.applies.holds(all)) continue;
    inapplicable.insert(p.name);
    const bool given = std::any_of(text.params.begin(), text.params.end(), [&](const auto& kv) { return kv.first == p.name; });
    if (given && !soft.count(p.name))
      fail("{}: parameter '{}' has no effect here ({} uses it only with {}); remove it", where, p.name, method.name,
           p.applies.text);
  }
  SpecText canonical{method.name, {}};
  for (const auto& p : method.params)
    if (!inapplicable.count(p.name) && (p.type != ParamType::Spec || !values[p.name].empty()) &&
        !(p.omit_default && values[p.name] == p.default_value))
      canonical.params.emplace_back(p.name, values[p.name]);
  return ResolvedSpec{&method, ParamValues(std::move(values), std::move(inapplicable)), format_spec_text(canonical)};
}

ResolvedSpec Registry::resolve(std::string_view spec) const {
  const std::string where = fmt::format("compressor '{}'", spec);
  return resolve_text(parse_spec_text(spec), where, 0);
}

SpecText spec_text_from_yaml(const YAML::Node& node, const std::string& where) {
  if (node.IsScalar()) return parse_spec_text(node.Scalar());
  if (!node.IsMap()) fail("{}: a compressor is a spec string or a map with 'method'", where);
  SpecText text;
  for (const auto& kv : node) {
    const std::string key = kv.first.as<std::string>();
    if (key == "method") {
      text.method = yaml_scalar_text(kv.second, where + ".method");
    } else if (kv.second.IsMap()) {
      text.params.emplace_back(key, format_spec_text(spec_text_from_yaml(kv.second, where + "." + key)));
    } else {
      text.params.emplace_back(key, yaml_scalar_text(kv.second, where + "." + key));
    }
  }
  if (text.method.empty()) fail("{}: missing 'method'", where);
  return text;
}

ResolvedSpec Registry::resolve(const YAML::Node& node) const {
  const SpecText text = spec_text_from_yaml(node, "compressor");
  return resolve_text(text, fmt::format("compressor '{}'", format_spec_text(text)), 0);
}

std::unique_ptr<Compressor> Registry::build(const ResolvedSpec& resolved) const {
  std::unique_ptr<Compressor> c;
  try {
    c = resolved.method->make(resolved.values, *this);
  } catch (const Error& e) {
    fail("compressor '{}': {}", resolved.canonical, e.what());
  }
  c->set_identity(resolved.method->name, resolved.canonical);
  return c;
}

std::unique_ptr<Compressor> Registry::build(std::string_view spec) const { return build(resolve(spec)); }
std::unique_ptr<Compressor> Registry::build(const YAML::Node& node) const { return build(resolve(node)); }

}  // namespace kvlab
