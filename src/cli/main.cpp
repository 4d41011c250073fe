// kvlab: replay recorded KV caches through compressors and measure the error.
#include <fmt/format.h>

#include <cstdio>
#include <exception>

#include "cli/commands.hpp"
#include "kvlab/core/allocator.hpp"
#include "kvlab/core/build_info.hpp"
#include "kvlab/core/error.hpp"
#include "kvlab/io/hdf5_errors.hpp"

int main(int argc, char** argv) {
  kvlab::tune_allocator();
  using namespace kvlab::cli;
  CLI::App app{"kvlab: replay recorded KV caches through compressors and measure error and size"};
  app.set_version_flag("--version",
                       fmt::format("kvlab {} ({})", kvlab::build_info::version, kvlab::build_info::git_revision()));
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

  kvlab::io::silence_hdf5_errors();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    return action ? action() : 0;
  } catch (const kvlab::Error& e) {
    std::fprintf(stderr, "kvlab: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kvlab: unexpected error: %s\n", e.what());
    return 2;
  }
}
