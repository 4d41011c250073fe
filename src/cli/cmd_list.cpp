// `kvlab list`: every method with its parameters, defaults and ranges, and the presets.
#include <fmt/format.h>

#include "cli/cli_util.hpp"
#include "cli/commands.hpp"
#include "kvlab/compressors/registry.hpp"
#include "kvlab/core/json.hpp"

namespace kvlab::cli {

namespace {

std::string registry_json(const Registry& reg, const std::string& only) {
  std::vector<std::string> methods;
  for (const MethodInfo& m : reg.methods()) {
    if (!only.empty() && m.name != only) continue;
    std::vector<std::string> params;
    for (const ParamSpec& p : m.params) {
      std::vector<std::string> choices;
      for (const auto& c : p.choices) choices.push_back(json_string(c));
      params.push_back(fmt::format(
          "{{\"name\": {}, \"type\": {}, \"default\": {}, \"doc\": {}, \"min\": {}, \"max\": {}, \"choices\": [{}], "
          "\"range\": {}, \"applies_when\": {}}}",
          json_string(p.name), json_string(param_type_name(p.type)), json_string(p.default_value), json_string(p.doc),
          json_number(p.min), json_number(p.max), fmt::join(choices, ", "), json_string(p.range_text()),
          p.applies.always() ? std::string("null") : json_string(p.applies.text)));
    }
    methods.push_back(fmt::format("    {{\"name\": {}, \"family\": {}, \"summary\": {}, \"params\": [\n      {}\n    ]}}",
                                  json_string(m.name), json_string(m.family), json_string(m.summary),
                                  fmt::join(params, ",\n      ")));
  }
  std::vector<std::string> presets;
  for (const auto& p : reg.presets())
    presets.push_back(fmt::format("    {{\"name\": {}, \"spec\": {}, \"canonical\": {}, \"doc\": {}}}",
                                  json_string(p.name), json_string(p.spec), json_string(reg.canonical(p.spec)),
                                  json_string(p.doc)));
  return fmt::format("{{\n  \"methods\": [\n{}\n  ],\n  \"presets\": [\n{}\n  ]\n}}\n", fmt::join(methods, ",\n"),
                     fmt::join(presets, ",\n"));
}

}  // namespace

void add_list_command(CLI::App& app, GlobalOptions&, Action& action) {
  auto* cmd = app.add_subcommand("list", "List every compressor with its parameters, defaults and ranges");
  auto method = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  cmd->add_option("method", *method, "Show only this method");
  cmd->add_flag("--json", *json, "Machine-readable: methods, parameters (with when they apply) and presets");
  cmd->callback([&action, method, json] {
    action = [method, json] {
      const Registry& reg = Registry::global();
      if (!method->empty()) reg.get(*method);  // unknown → error with suggestions
      if (*json) {
        fmt::print("{}", registry_json(reg, *method));
        return 0;
      }
      for (const MethodInfo& m : reg.methods()) {
        if (!method->empty() && m.name != *method) continue;
        fmt::print("{}  [{}]\n  {}\n", m.name, m.family, m.summary);
        std::vector<std::vector<std::string>> rows{{"  parameter", "default", "range", "description"}};
        for (const auto& p : m.params)
          rows.push_back({"  " + p.name, p.default_value.empty() ? "-" : p.default_value, p.range_text(),
                          p.applies.always() ? p.doc : p.doc + " [only with " + p.applies.text + "]"});
        if (!m.params.empty()) fmt::print("{}", format_table(rows));
        fmt::print("\n");
      }
      if (method->empty()) {
        fmt::print("Presets (usable wherever a spec is accepted; `preset:param=value` overrides):\n");
        std::vector<std::vector<std::string>> rows{{"  preset", "spec", "description"}};
        for (const auto& p : reg.presets()) rows.push_back({"  " + p.name, p.spec, p.doc});
        fmt::print("{}", format_table(rows));
      }
      return 0;
    };
  });
}

}  // namespace kvlab::cli
