#include "kvlab/report/job_identity.hpp"

#include <filesystem>
#include <map>
#include <set>

#include "kvlab/core/hash.hpp"

namespace kvlab {

JobIdentity make_identity(const ResolvedSpec& spec, const std::string& dump_label, const std::string& dump_path,
                          const ReplayOptions& opts, const std::string& extra) {
  JobIdentity id;
  id.dump = dump_label;
  id.method = spec.method->name;
  id.family = spec.method->family;
  id.spec = spec.canonical;
  id.preset = preset_of(spec.canonical);
  id.params = spec.values.applicable();
  std::error_code ec;
  const auto size = std::filesystem::file_size(dump_path, ec);
  // The file name and size identify the dump without reading it; the absolute
  // path would make ids differ between clones.
  std::string key = fmt::format("{}|{}|{}|layers={}|every={}|steps={}|attn={}|seed={}", spec.canonical,
                                std::filesystem::path(dump_path).filename().string(), ec ? 0 : size,
                                fmt::join(opts.layers, ","), opts.eval_every, opts.max_steps, opts.attention,
                                opts.seed);
  if (!extra.empty()) key += "|" + extra;
  id.job_id = hex_hash(key);
  return id;
}

std::string preset_of(const std::string& canonical) {
  // Presets resolve once; the first preset with this canonical spec names it.
  static const std::map<std::string, std::string> by_spec = [] {
    std::map<std::string, std::string> m;
    const Registry& r = Registry::global();
    for (const auto& p : r.presets()) m.emplace(r.canonical(p.spec), p.name);
    return m;
  }();
  const auto it = by_spec.find(canonical);
  return it == by_spec.end() ? std::string() : it->second;
}

std::vector<std::string> parameter_columns(const std::vector<const MethodInfo*>& methods) {
  std::set<std::string> names;
  for (const MethodInfo* m : methods)
    for (const auto& p : m->params) names.insert(p.name);
  return {names.begin(), names.end()};
}

}  // namespace kvlab
