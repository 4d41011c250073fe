// `kvlab sweep FILE.yaml`: the ablation runner (docs/sweeps.md).
#include <fmt/format.h>

#include "cli/cli_util.hpp"
#include "cli/commands.hpp"
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
};

int print_plan(const SweepPlan& plan) {
  long long blocks = 0, token_steps = 0;
  std::vector<std::vector<std::string>> rows{{"job_id", "dump", "spec"}};
  for (const auto& j : plan.jobs) {
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
  fmt::print("sweep '{}': {} jobs over {} dumps, {} blocks, {} token-blocks to replay; results in {}\n",
             plan.config.name, plan.jobs.size(), plan.dumps.size(), blocks, token_steps, plan.out_dir);
  for (const PlannedDump& d : plan.dumps)
    if (!d.error.empty()) fmt::print("unreadable dump (its jobs will fail): {}\n", d.error);
  return 0;
}

int run(const SweepCliOptions& o, const GlobalOptions& global) {
  const SweepPlan plan = make_sweep_plan(load_sweep_config(o.file), o.out);
  if (o.dry_run) return print_plan(plan);
  SweepRunOptions ro;
  ro.resume = o.resume;
  ro.overwrite = o.overwrite;
  ro.quiet = global.quiet;
  ro.threads = o.threads;
  ro.chunk = o.chunk;
  const SweepOutcome r = run_sweep(plan, ro);
  fmt::print("sweep '{}': {} jobs ({} already done, {} ran, {} failed) in {:.2f} s; results in {}\n",
             plan.config.name, r.jobs, r.skipped, r.ok, r.failed, r.seconds, plan.out_dir);
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
  cmd->add_option("-j,--threads", o->threads, "Worker threads (default: the file's, else all cores)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--chunk", o->chunk, "Jobs replayed together per layer read (default 4 × threads)")
      ->check(CLI::NonNegativeNumber);
  cmd->get_option("--overwrite")->excludes(cmd->get_option("--resume"));
  cmd->callback([&action, &global, o] { action = [o, &global] { return run(*o, global); }; });
}

}  // namespace kvlab::cli
