// `kvlab schema`: every column of every results file, from the one declared
// list (src/kvlab/report/result_fields.cpp): JSON for tools (the Python
// loader validates against analysis/kvlab_analysis/results_schema.json, which
// is this output) or the Markdown tables of docs/outputs.md.
#include <fmt/format.h>

#include "cli/commands.hpp"
#include "kvlab/report/result_fields.hpp"

namespace kvlab::cli {

void add_schema_command(CLI::App& app, GlobalOptions&, Action& action) {
  auto* cmd = app.add_subcommand("schema", "Print the columns of every results file (JSON or Markdown)");
  auto markdown = std::make_shared<bool>(false);
  cmd->add_flag("--markdown", *markdown, "Markdown tables (docs/outputs.md) instead of JSON");
  cmd->callback([&action, markdown] {
    action = [markdown] {
      fmt::print("{}", *markdown ? schema_markdown() : schema_json());
      return 0;
    };
  });
}

}  // namespace kvlab::cli
