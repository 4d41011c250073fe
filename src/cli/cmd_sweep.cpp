// `kvlab sweep FILE.yaml`: the ablation runner (docs/sweeps.md); under mpirun
// the ranks share the work, with --shard one part of it (docs/cluster.md).
#include <fmt/format.h>

#include <numeric>

#include "cli/cli_util.hpp"
#include "cli/commands.hpp"
#include "kvlab/distributed/communicator.hpp"
#include "kvlab/replay/replay_dump.hpp"
#include "kvlab/sweep/sweep_runner.hpp"

namespace kvlab::cli {

namespace {

struct SweepCliOptions {
  std::string file;
  std::string out;
  bool resume = false, overwrite = false, dry_run = false;
  int threads = 0;
  int chunk = 0;
  std::string shard;
};

int print_plan(const SweepPlan& plan, const std::optional<ShardId>& shard) {
  long long blocks = 0, token_steps = 0;
  std::vector<std::vector<std::string>> rows{{"job_id", "dump", "spec"}};
  std::vector<std::size_t> scope(plan.jobs.size());
  std::iota(scope.begin(), scope.end(), std::size_t{0});
  if (shard) scope = shard_jobs(plan, *shard);
  for (std::size_t i : scope) {
    const SweepJob& j = plan.jobs[i];
    const PlannedDump& dump = plan.dumps[j.dump_index];
    if (dump.error.empty()) {
      const DumpInfo& info = dump.info;
      const auto layers = static_cast<long long>(selected_layers(info, plan.config.replay).size());
      blocks += layers * info.num_kv_heads;
      const int steps = selected_decode_steps(info, plan.config.replay);
      token_steps += layers * info.num_kv_heads * static_cast<long long>(info.prompt_len + steps);
    }
    rows.push_back({j.job.identity.job_id, j.job.identity.dump, j.job.spec.canonical});
  }
  fmt::print("{}", format_table(rows));
  const std::string part = shard ? fmt::format(" (shard {}: {} of {} jobs)", shard->text(), scope.size(),
                                               plan.jobs.size())
                                 : "";
  fmt::print("sweep '{}': {} jobs over {} dumps, {} blocks, {} token-blocks to replay{}; results in {}\n",
             plan.config.name, scope.size(), plan.dumps.size(), blocks, token_steps, part, plan.out_dir);
  for (const PlannedDump& d : plan.dumps)
    if (!d.error.empty()) fmt::print("unreadable dump (its jobs will fail): {}\n", d.error);
  const auto& comm = distributed::world();
  if (comm.parallel() && !plan.model) {  // how the work is cut for these ranks (docs/cluster.md)
    std::vector<Job> jobs;
    for (const SweepJob& j : plan.jobs) jobs.push_back(j.job);
    const std::vector<int> pieces = distributed::job_pieces(jobs, scope, plan_job_estimates(plan), comm.size());
    std::size_t last_dump = plan.dumps.size();
    for (std::size_t t = 0; t < scope.size(); ++t) {
      const SweepJob& j = plan.jobs[scope[t]];
      if (pieces[t] > 1 && j.dump_index != last_dump)
        fmt::print("on {} ranks, the jobs on {} run in {} layer ranges\n", comm.size(), j.job.identity.dump, pieces[t]);
      last_dump = j.dump_index;
    }
  }
  return 0;
}

int run(const SweepCliOptions& o, const GlobalOptions& global) {
  const distributed::Communicator& comm = distributed::world();
  const auto [plan, shard] = distributed::agreed(comm, [&] {
    std::optional<ShardId> s;
    if (!o.shard.empty()) s = parse_shard(o.shard);
    return std::make_pair(make_sweep_plan(load_sweep_config(o.file), o.out), s);
  });
  if (o.dry_run) return comm.root() ? print_plan(plan, shard) : 0;
  SweepRunOptions ro;
  ro.resume = o.resume;
  ro.overwrite = o.overwrite;
  ro.quiet = global.quiet;
  ro.threads = o.threads;
  ro.chunk = o.chunk;
  ro.shard = shard;
  const SweepOutcome r = run_sweep(plan, ro);
  if (!comm.root()) return 0;
  const std::string where = fmt::format("{}{}", shard ? fmt::format(", shard {}", shard->text()) : "",
                                        r.ranks > 1 ? fmt::format(", {} ranks", r.ranks) : "");
  fmt::print("sweep '{}': {} jobs ({} already done, {} ran, {} failed{}) in {:.2f} s; results in {}\n",
             plan.config.name, r.jobs, r.skipped, r.ok, r.failed, where, r.seconds, plan.out_dir);
  if (r.failed > 0) {
    fmt::print(stderr, "kvlab: error: {} job(s) failed; see the error column of {}/summary.csv\n", r.failed,
               plan.out_dir);
    return 1;
  }
  return 0;
}

}  // namespace

void add_sweep_command(CLI::App& app, GlobalOptions& global, Action& action) {
  auto* cmd = app.add_subcommand("sweep", "Run a YAML-defined ablation sweep (resumable, parallel, deterministic)");
  auto o = std::make_shared<SweepCliOptions>();
  cmd->add_option("config", o->file, "Sweep file (YAML)")->required();
  cmd->add_option("-o,--out", o->out, "Results folder (default: the file's 'out' or results/<name>)");
  cmd->add_flag("--resume", o->resume, "Skip jobs whose rows are complete; finish the rest");
  cmd->add_flag("--overwrite", o->overwrite, "Discard existing results in the folder");
  cmd->add_flag("--dry-run", o->dry_run, "Print the expanded plan and exit");
  cmd->add_option("-j,--threads", o->threads,
                  "Worker threads per rank (default: the file's, else the cores, shared by the ranks on a node)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--chunk", o->chunk, "Jobs replayed together per layer read (default 4 × threads)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--shard", o->shard,
                  "Run only part I of N (I/N, 1-based; 'auto': the Slurm array task); join with kvlab merge");
  cmd->get_option("--overwrite")->excludes(cmd->get_option("--resume"));
  cmd->callback([&action, &global, o] { action = [o, &global] { return run(*o, global); }; });
}

}  // namespace kvlab::cli
