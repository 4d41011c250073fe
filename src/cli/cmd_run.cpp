// `kvlab run`: replay one dump through one or more compressors and print a
// summary table; optionally write the tidy CSV files of a results folder.
#include <fmt/format.h>
#include <omp.h>

#include <chrono>

#include "cli/cli_util.hpp"
#include "cli/commands.hpp"
#include "kvlab/compressors/registry.hpp"
#include "kvlab/core/error.hpp"
#include "kvlab/replay/job_summary.hpp"
#include "kvlab/report/results_writer.hpp"

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

int run(const RunOptions& o, const GlobalOptions& global) {
  const Registry& registry = Registry::global();
  std::vector<ResolvedSpec> specs;
  std::vector<std::unique_ptr<Compressor>> compressors;
  for (const auto& s : o.compressors) {
    specs.push_back(registry.resolve(s));
    compressors.push_back(registry.build(specs.back()));
  }
  const DumpReader reader(o.dump);
  const DumpInfo& info = reader.info();

  ReplayOptions opts;
  if (!o.layers.empty()) opts.layers = parse_index_list(o.layers, "--layers");
  opts.eval_every = o.eval_every;
  opts.max_steps = o.max_steps;
  opts.threads = o.threads > 0 ? o.threads : omp_get_max_threads();
  opts.seed = o.seed;
  opts.attention = info.has_queries && !o.no_attention;

  std::vector<const Compressor*> jobs;
  for (const auto& c : compressors) jobs.push_back(c.get());
  const long long blocks = static_cast<long long>(selected_layers(info, opts).size()) * info.num_kv_heads *
                           static_cast<long long>(jobs.size());
  Progress progress(fmt::format("replay {}", info.path), blocks, !global.quiet, "blocks");
  const auto start = std::chrono::steady_clock::now();
  const std::vector<JobResult> results = replay_dump(reader, jobs, opts, &progress);
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  progress.finish();
  for (const JobResult& r : results)
    if (!r.ok()) fail("{}", r.error);

  fmt::print("dump {}: {} layers × {} kv heads ({} query heads), d={}, prompt {} + {} decode steps{}\n", info.path,
             info.num_layers, info.num_kv_heads, info.num_heads, info.head_dim, info.prompt_len,
             selected_decode_steps(info, opts), opts.attention ? "" : "  (no attention metrics)");
  std::vector<std::vector<std::string>> rows{
      {"compressor", "ratio", "bits/elem", "K rel err", "V rel err", "attn out rel", "attn KL", "dropped mass"}};
  std::vector<JobSummary> summaries;
  for (std::size_t j = 0; j < results.size(); ++j) {
    const JobSummary s = summarize(results[j]);
    summaries.push_back(s);
    rows.push_back({compressors[j]->spec(), fmt::format("{:.3f}", s.compression_ratio),
                    fmt::format("{:.3f}", s.bits_per_element), pretty(s.k_rel_err_global),
                    pretty(s.v_rel_err_global), pretty(s.attn_out_rel), pretty(s.attn_kl), pretty(s.dropped_mass)});
  }
  fmt::print("{}", format_table(rows));
  fmt::print("replayed in {:.2f} s with {} threads\n", wall, opts.threads);
  if (o.per_layer)
    for (std::size_t j = 0; j < results.size(); ++j)
      fmt::print("\n{}\n{}", compressors[j]->spec(), format_table(per_layer_table(results[j])));

  if (!o.csv_dir.empty()) {
    std::vector<const MethodInfo*> methods;
    for (const auto& s : specs) methods.push_back(s.method);
    ResultsWriter writer(o.csv_dir, parameter_columns(methods), false);
    for (std::size_t j = 0; j < results.size(); ++j)
      writer.write_job(make_identity(specs[j], o.dump, o.dump, opts), results[j], summaries[j],
                       wall / static_cast<double>(results.size()), opts.threads);
    fmt::print("wrote {}/summary.csv, layers.csv, steps.csv\n", o.csv_dir);
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
  cmd->add_option("-j,--threads", o->threads, "Worker threads (default: all cores)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--seed", o->seed, "Seed of every random stream");
  cmd->add_flag("--no-attention", o->no_attention, "Skip attention metrics");
  cmd->add_flag("--per-layer", o->per_layer, "Also print a per-(layer, kv head) table");
  cmd->add_option("--csv", o->csv_dir, "Write summary.csv, layers.csv, steps.csv into this folder");
  cmd->callback([&action, &global, o] { action = [o, &global] { return run(*o, global); }; });
}

}  // namespace kvlab::cli
