// kvlab: replay recorded KV caches through compressors and measure the error.
#include <fmt/format.h>

#include <cstdio>
#include <exception>

#include "cli/commands.hpp"
#include "kvlab/core/allocator.hpp"
#include "kvlab/core/build_info.hpp"
#include "kvlab/core/error.hpp"
#include "kvlab/distributed/communicator.hpp"
#include "kvlab/io/hdf5_errors.hpp"

namespace {

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

  kvlab::io::silence_hdf5_errors();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
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
