// `kvlab merge OUT DIR...`: join the shard folders of one sweep (docs/cluster.md).
#include <fmt/format.h>

#include "cli/commands.hpp"
#include "kvlab/sweep/merge.hpp"

namespace kvlab::cli {

namespace {

struct MergeCliOptions {
  std::string out;
  std::vector<std::string> dirs;
  bool overwrite = false;
};

void print_jobs(const char* what, const std::vector<MergedJob>& jobs) {
  constexpr std::size_t kShown = 20;
  for (std::size_t i = 0; i < jobs.size() && i < kShown; ++i)
    fmt::print("  {} {}  {}  {}{}\n", what, jobs[i].job_id, jobs[i].dump, jobs[i].spec,
               jobs[i].error.empty() ? "" : ": " + jobs[i].error);
  if (jobs.size() > kShown) fmt::print("  ... and {} more {}\n", jobs.size() - kShown, what);
}

int run(const MergeCliOptions& o) {
  const MergeOutcome r = merge_results(MergeOptions{o.out, o.dirs, o.overwrite});
  fmt::print("merged {} folders of plan {}: {} of {} jobs ok, {} failed, {} missing; results in {}\n", o.dirs.size(),
             r.plan_hash, r.ok, r.jobs, r.failed.size(), r.missing.size(), o.out);
  for (const std::string& s : r.missing_shards) fmt::print("  shard {} not given\n", s);
  print_jobs("missing", r.missing);
  print_jobs("failed", r.failed);
  if (r.missing.empty() && r.failed.empty()) return 0;
  fmt::print(stderr,
             "kvlab: error: {} job(s) missing, {} failed; rerun their shards with --resume and merge again with "
             "--overwrite, or finish {} with `kvlab sweep FILE --out {} --resume`\n",
             r.missing.size(), r.failed.size(), o.out, o.out);
  return 1;
}

}  // namespace

void add_merge_command(CLI::App& app, GlobalOptions&, Action& action) {
  auto* cmd = app.add_subcommand("merge", "Join the results folders of a sweep's shards into one (plan order)");
  auto o = std::make_shared<MergeCliOptions>();
  cmd->add_option("out", o->out, "Output folder")->required();
  cmd->add_option("dirs", o->dirs, "Shard folders (kvlab sweep --shard I/N --out DIR)")->required();
  cmd->add_flag("--overwrite", o->overwrite, "Replace results already in the output folder");
  cmd->callback([&action, o] { action = [o] { return run(*o); }; });
}

}  // namespace kvlab::cli
