// `kvlab list`: every method with its parameters, defaults and ranges, and the presets.
#include <fmt/format.h>

#include "cli/cli_util.hpp"
#include "cli/commands.hpp"
#include "kvlab/compressors/registry.hpp"

namespace kvlab::cli {

void add_list_command(CLI::App& app, GlobalOptions&, Action& action) {
  auto* cmd = app.add_subcommand("list", "List every compressor with its parameters, defaults and ranges");
  auto method = std::make_shared<std::string>();
  cmd->add_option("method", *method, "Show only this method");
  cmd->callback([&action, method] {
    action = [method] {
      const Registry& reg = Registry::global();
      if (!method->empty()) reg.get(*method);  // unknown → error with suggestions
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
