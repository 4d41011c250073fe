// `kvlab run`: replay one dump through one or more compressors and print a
// summary table; optionally write the tidy CSV files of a results folder.
// Under mpirun the dump's layers are split across the ranks
// (distributed/layer_split.hpp) and rank 0 prints and writes.
#include <fmt/format.h>

#include <chrono>

#include "cli/cli_util.hpp"
#include "cli/commands.hpp"
#include <optional>

#include "kvlab/compressors/registry.hpp"
#include "kvlab/core/error.hpp"
#include "kvlab/distributed/job_pieces.hpp"
#include "kvlab/distributed/layer_split.hpp"
#include "kvlab/replay/replay_dump.hpp"
#include "kvlab/report/job_identity.hpp"
#include "kvlab/report/labels.hpp"
#include "kvlab/report/results_writer.hpp"
#include "kvlab/runner/job_runner.hpp"

namespace kvlab::cli {

namespace {

struct RunOptions {
  std::string dump;
  std::vector<std::string> compressors;
  std::string layers;
  int eval_every = 1;
  int max_steps = -1;
  int threads = 0;
  std::uint64_t seed = 0;
  bool no_attention = false;
  bool per_layer = false;
  std::string csv_dir;
  bool overwrite = false;
};

std::vector<std::vector<std::string>> per_layer_table(const JobResult& job) {
  std::vector<std::vector<std::string>> rows{{"layer", "kv_head", "K rel err", "V rel err", "attn out rel", "bits/elem"}};
  for (const BlockResult& b : job.blocks) {
    const double evals = b.attn_evals ? static_cast<double>(b.attn_evals) : NAN;
    const double elems = 2.0 * b.tokens * b.head_dim;
    rows.push_back({fmt::format("{}", b.layer), fmt::format("{}", b.kv_head),
                    pretty(b.keys_reconstructible ? b.keys.rel() : NAN), pretty(b.values.rel()),
                    pretty(b.attn.out_rel / evals), pretty(static_cast<double>(b.bits.total()) / elems)});
  }
  return rows;
}

struct RunSetup {
  DumpInfo info;
  ReplayOptions opts;
  std::vector<Job> jobs;
  std::vector<const MethodInfo*> methods;
};

RunSetup set_up(const RunOptions& o) {
  const Registry& registry = Registry::global();
  RunSetup s;
  s.info = DumpReader(o.dump).info();
  const DumpInfo& info = s.info;
  ReplayOptions& opts = s.opts;
  if (!o.layers.empty()) opts.layers = parse_index_list(o.layers, "--layers");
  opts.eval_every = o.eval_every;
  opts.max_steps = o.max_steps;
  opts.seed = o.seed;
  opts.attention = info.has_queries && !o.no_attention;
  selected_layers(info, opts);  // a bad --layers fails before any work
  for (const auto& text : o.compressors) {
    const ResolvedSpec spec = registry.resolve(text);
    registry.build(spec);  // constraints between parameters fail here, before any work
    check_compatible(info, *registry.build(spec), opts);
    s.methods.push_back(spec.method);
    s.jobs.push_back(Job{o.dump, spec, opts, make_identity(spec, o.dump, o.dump, opts)});
  }
  return s;
}

int run(const RunOptions& o, const GlobalOptions& global) {
  const distributed::Communicator& comm = distributed::world();
  const RunSetup setup = distributed::agreed(comm, [&] { return set_up(o); });
  const DumpInfo& info = setup.info;
  const ReplayOptions& opts = setup.opts;
  const std::vector<Job>& jobs = setup.jobs;
  // The results folder is checked before the work, not after.
  std::optional<ResultsWriter> writer;
  distributed::agreed(comm, [&] {
    if (comm.root() && !o.csv_dir.empty())
      writer.emplace(o.csv_dir, TableLayout{parameter_columns(setup.methods)},
                     o.overwrite ? ResultsWriter::Mode::Overwrite : ResultsWriter::Mode::Fresh);
  });

  RunnerOptions ro;
  ro.threads = o.threads > 0 ? o.threads : distributed::default_threads(comm);
  const std::vector<int> my_layers =
      distributed::piece_layers(selected_layers(info, opts), comm.rank(), comm.size());
  long long blocks = 0;  // this rank's, for its progress line
  for (Job j : jobs) {
    j.replay.layers = my_layers;
    if (!my_layers.empty()) blocks += job_blocks(j, info);
  }
  const std::string of_ranks = comm.parallel() ? fmt::format(" (rank 0 of {})", comm.size()) : "";
  Progress progress(fmt::format("replay {}{}", info.path, of_ranks), blocks, comm.root() && !global.quiet, "blocks");
  ro.progress = &progress;
  const auto start = std::chrono::steady_clock::now();
  const std::vector<JobRecord> records = distributed::run_jobs_layer_split(comm, jobs, info, ro);
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  progress.finish();
  std::string error;  // a failed job fails the run, on every rank alike
  for (const JobRecord& r : records)
    if (!r.ok() && error.empty()) error = r.error;
  distributed::agree(comm, error);
  if (!comm.root()) return 0;

  fmt::print("dump {}: {} layers × {} kv heads ({} query heads), d={}, prompt {} + {} decode steps{}\n", info.path,
             info.num_layers, info.num_kv_heads, info.num_heads, info.head_dim, info.prompt_len,
             selected_decode_steps(info, opts), opts.attention ? "" : "  (no attention metrics)");
  std::vector<JobIdentity> ids;
  for (const JobRecord& r : records) ids.push_back(r.identity);
  const std::vector<std::string> labels = short_labels(ids);
  std::vector<std::vector<std::string>> rows{
      {"compressor", "ratio", "bits/elem", "K rel err", "V rel err", "attn out rel", "attn KL", "KL(p̂‖p)",
       "dropped mass"}};
  for (std::size_t j = 0; j < records.size(); ++j) {
    const JobSummary& s = records[j].summary;
    rows.push_back({labels[j], fmt::format("{:.3f}", s.compression_ratio), fmt::format("{:.3f}", s.bits_per_element),
                    pretty(s.k_rel_err_global), pretty(s.v_rel_err_global), pretty(s.attn_out_rel), pretty(s.attn_kl),
                    pretty(s.attn_kl_rev), pretty(s.dropped_mass)});
  }
  fmt::print("{}", format_table(rows));
  const auto evals = evaluation_steps(selected_decode_steps(info, opts), opts.eval_every).size();
  const std::string which = opts.eval_every == 1  ? "after prefill and every decode step"
                            : opts.eval_every > 1 ? fmt::format("after prefill, every {} steps and the last", opts.eval_every)
                                                  : "after prefill and the last";
  fmt::print(
      "ratio, bits/elem: exact size of the final cache. K/V rel err: sqrt(Σ‖X−X̂‖²/Σ‖X‖²) over all blocks of the "
      "final cache.\nattn: means over query heads, layers and {} evaluated steps ({}); "
      "attn KL = KL(p′‖p̂) over kept tokens\nrenormalised; KL(p̂‖p) includes the dropped mass "
      "(docs/metrics.md).\n",
      evals, which);
  for (std::size_t j = 0; j < records.size(); ++j)
    if (labels[j] != records[j].identity.spec) fmt::print("  {} = {}\n", labels[j], records[j].identity.spec);
  if (comm.parallel())
    fmt::print("replayed in {:.2f} s on {} ranks × {} threads (layers split across ranks)\n", wall, comm.size(),
               ro.threads);
  else
    fmt::print("replayed in {:.2f} s with {} threads\n", wall, ro.threads);
  if (o.per_layer)
    for (std::size_t j = 0; j < records.size(); ++j)
      fmt::print("\n{}\n{}", labels[j], format_table(per_layer_table(records[j].result)));

  if (writer) {
    for (const JobRecord& r : records) writer->write(r);
    fmt::print("wrote {}/summary.csv, layers.csv, steps.csv, timing.csv\n", o.csv_dir);
  }
  return 0;
}

}  // namespace

void add_run_command(CLI::App& app, GlobalOptions& global, Action& action) {
  auto* cmd = app.add_subcommand("run", "Replay one dump through compressors and report error and size");
  auto o = std::make_shared<RunOptions>();
  cmd->add_option("-d,--dump", o->dump, "kvdump file (HDF5)")->required();
  cmd->add_option("-c,--compressor", o->compressors, "Compressor spec or preset (repeatable), e.g. kivi:bits=2")
      ->required();
  cmd->add_option("--layers", o->layers, "Layers to replay, e.g. 0,2,5-7 (default: all)");
  cmd->add_option("--eval-every", o->eval_every, "Evaluate every K-th decode step (0: prefill and last only)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--max-steps", o->max_steps, "Replay at most N decode steps (default: all recorded)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("-j,--threads", o->threads,
                  "Worker threads (per rank under MPI; default: the cores, shared by the ranks on a node)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--seed", o->seed, "Seed of every random stream");
  cmd->add_flag("--no-attention", o->no_attention, "Skip attention metrics");
  cmd->add_flag("--per-layer", o->per_layer, "Also print a per-(layer, kv head) table");
  cmd->add_option("--csv", o->csv_dir, "Write summary.csv, layers.csv, steps.csv, timing.csv into this folder");
  cmd->add_flag("--overwrite", o->overwrite, "Replace results already in the --csv folder");
  cmd->callback([&action, &global, o] { action = [o, &global] { return run(*o, global); }; });
}

}  // namespace kvlab::cli
