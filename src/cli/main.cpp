// kvlab: replay recorded KV caches through compressors and measure the error.
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <exception>

#include "cli/commands.hpp"
#include "kvlab/compressors/params.hpp"
#include "kvlab/core/allocator.hpp"
#include "kvlab/core/build_info.hpp"
#include "kvlab/core/error.hpp"
#include "kvlab/distributed/communicator.hpp"
#include "kvlab/io/hdf5_errors.hpp"

namespace {

// For an unknown subcommand or option: "unknown option '--eval_every' for
// run (did you mean '--eval-every'?); see kvlab run --help", else "".
std::string suggest_for_parse_error(CLI::App& app, int argc, char** argv) {
  std::vector<std::string> commands;
  CLI::App* active = nullptr;
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) {
    commands.push_back(sub->get_name());
    for (int i = 1; i < argc; ++i)
      if (argv[i] == sub->get_name()) active = sub;
  }
  if (active == nullptr) {
    for (int i = 1; i < argc; ++i) {
      const std::string arg = argv[i];
      if (arg.empty() || arg[0] == '-') continue;
      return fmt::format("unknown command '{}'{}; commands: {}", arg, kvlab::did_you_mean(arg, commands),
                         fmt::join(commands, ", "));
    }
    return fmt::format("a command is required: {}", fmt::join(commands, ", "));
  }
  std::vector<std::string> names;
  for (const CLI::Option* opt : active->get_options())
    for (const std::string& n : opt->get_lnames()) names.push_back("--" + n);
  for (const CLI::Option* opt : app.get_options())
    for (const std::string& n : opt->get_lnames()) names.push_back("--" + n);
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0) continue;
    arg = arg.substr(0, arg.find('='));
    if (std::find(names.begin(), names.end(), arg) != names.end()) continue;
    return fmt::format("unknown option '{}' for {}{}; see kvlab {} --help", arg, active->get_name(),
                       kvlab::did_you_mean(arg, names), active->get_name());
  }
  return {};
}

int run(int argc, char** argv) {
  using namespace kvlab::cli;
  CLI::App app{"kvlab: replay recorded KV caches through compressors and measure error and size"};
  app.set_version_flag("--version",
                       fmt::format("kvlab {} ({}{})", kvlab::build_info::version, kvlab::build_info::git_revision(),
                                   kvlab::distributed::built_with_mpi() ? ", MPI" : ""));
  app.require_subcommand(1);
  app.fallthrough();  // global flags such as --quiet may follow the subcommand
  GlobalOptions global;
  app.add_flag("-q,--quiet", global.quiet, "No progress line on stderr");

  Action action;
  add_list_command(app, global, action);
  add_run_command(app, global, action);
  add_inspect_command(app, global, action);
  add_synth_command(app, global, action);
  add_sweep_command(app, global, action);
  add_regress_command(app, global, action);
  add_decode_command(app, global, action);
  add_schema_command(app, global, action);
  add_merge_command(app, global, action);

  // --help shows every default.
  app.option_defaults()->always_capture_default();
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; }))
    for (CLI::Option* opt : sub->get_options()) opt->capture_default_str();

  kvlab::io::silence_hdf5_errors();
  // Every MPI rank parses the same command line: only rank 0 prints help or
  // says what is wrong with it, and every rank exits with the same status.
  const bool speaks = kvlab::distributed::world().root();
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return speaks ? app.exit(e) : e.get_exit_code();
  } catch (const CLI::CallForAllHelp& e) {
    return speaks ? app.exit(e) : e.get_exit_code();
  } catch (const CLI::Success& e) {
    return speaks ? app.exit(e) : e.get_exit_code();
  } catch (const CLI::ParseError& e) {
    if (!speaks) return e.get_exit_code();
    // One line, with a suggestion for a mistyped subcommand or option.
    const std::string hint = suggest_for_parse_error(app, argc, argv);
    std::fprintf(stderr, "kvlab: error: %s%s\n", hint.empty() ? e.what() : hint.c_str(),
                 hint.empty() ? " (see kvlab --help)" : "");
    return e.get_exit_code();
  }
  const auto& comm = kvlab::distributed::world();
  // Under MPI, an error all ranks agreed on is reported once (rank 0) and
  // every rank exits; an error on one rank alone ends the whole MPI job, since
  // the others may be waiting for it.
  const std::string rank = comm.parallel() ? fmt::format(" (rank {} of {})", comm.rank(), comm.size()) : "";
  int code = 0;
  try {
    return action ? action() : 0;
  } catch (const kvlab::distributed::AgreedError& e) {
    if (comm.root()) std::fprintf(stderr, "kvlab: error: %s\n", e.what());
    return 1;
  } catch (const kvlab::Error& e) {
    std::fprintf(stderr, "kvlab: error%s: %s\n", rank.c_str(), e.what());
    code = 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kvlab: unexpected error%s: %s\n", rank.c_str(), e.what());
    code = 2;
  }
  if (comm.parallel()) comm.abort(code);
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  kvlab::tune_allocator();
  try {
    const kvlab::distributed::Session mpi(&argc, &argv);  // MPI for the process's lifetime, when under mpirun/srun
    return run(argc, argv);
  } catch (const kvlab::Error& e) {
    std::fprintf(stderr, "kvlab: error: %s\n", e.what());
    return 1;
  }
}
