#include "kvlab/report/labels.hpp"

#include <map>
#include <set>

#include "kvlab/compressors/registry.hpp"

namespace kvlab {

std::vector<std::string> short_labels(const std::vector<JobIdentity>& jobs) {
  // Per method: the parameters whose value differs between its jobs here.
  std::map<std::string, std::map<std::string, std::set<std::string>>> values;
  for (const JobIdentity& j : jobs)
    for (const auto& [name, value] : j.params) values[j.method][name].insert(value);
  std::vector<std::string> labels;
  for (const JobIdentity& j : jobs) {
    if (!j.preset.empty()) {
      labels.push_back(j.preset);
      continue;
    }
    std::string label = j.method;
    bool varies = false;
    for (const auto& [name, value] : j.params)
      if (values[j.method][name].size() > 1) {
        label += " " + name + "=" + value;
        varies = true;
      }
    // Alone among its method's jobs: name what differs from the defaults.
    const MethodInfo* m = Registry::global().find(j.method);
    if (!varies && m)
      for (const ParamSpec& p : m->params) {
        const auto it = j.params.find(p.name);
        if (it != j.params.end() && it->second != p.default_value) label += " " + p.name + "=" + it->second;
      }
    labels.push_back(std::move(label));
  }
  // Equal labels would hide which is which: fall back to the full spec.
  for (std::size_t i = 0; i < jobs.size(); ++i)
    for (std::size_t k = 0; k < jobs.size(); ++k)
      if (i != k && labels[i] == labels[k] && jobs[i].spec != jobs[k].spec) labels[i] = jobs[i].spec;
  return labels;
}

}  // namespace kvlab
