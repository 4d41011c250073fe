#pragma once
// Each subcommand lives in its own cmd_*.cpp and registers itself here. A
// command's action runs after parsing; it returns the process exit status and
// reports user errors by throwing kvlab::Error (printed as one line by main).
#include <CLI/CLI.hpp>

#include <functional>

namespace kvlab::cli {

struct GlobalOptions {
  bool quiet = false;  // no progress line on stderr
};

using Action = std::function<int()>;

// Every add_* registers a subcommand on `app` and stores its action in `action`
// through the subcommand's callback.
void add_list_command(CLI::App& app, GlobalOptions& global, Action& action);
void add_run_command(CLI::App& app, GlobalOptions& global, Action& action);
void add_inspect_command(CLI::App& app, GlobalOptions& global, Action& action);
void add_synth_command(CLI::App& app, GlobalOptions& global, Action& action);
void add_sweep_command(CLI::App& app, GlobalOptions& global, Action& action);
void add_regress_command(CLI::App& app, GlobalOptions& global, Action& action);
void add_decode_command(CLI::App& app, GlobalOptions& global, Action& action);
void add_schema_command(CLI::App& app, GlobalOptions& global, Action& action);
void add_merge_command(CLI::App& app, GlobalOptions& global, Action& action);

}  // namespace kvlab::cli
