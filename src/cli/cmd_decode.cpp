// `kvlab decode`: model in the loop. Runs a kvlab-model forward twice over the
// same sequence — uncompressed reference cache vs. a compressor's cache — and
// reports per decode step how far the compressed run drifts (KL, top-1,
// hidden-state and attention-output error, cross-entropy).
#include <fmt/format.h>
#include <omp.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "cli/cli_util.hpp"
#include "cli/commands.hpp"
#include "kvlab/core/progress.hpp"
#include "kvlab/compressors/registry.hpp"
#include "kvlab/core/error.hpp"
#include "kvlab/io/dump_reader.hpp"
#include "kvlab/core/csv.hpp"
#include "kvlab/model/decode_compare.hpp"
#include "kvlab/report/job_identity.hpp"
#include "kvlab/report/result_fields.hpp"

namespace kvlab::cli {

namespace {

struct DecodeCliOptions {
  std::string model, dump, tokens_file, compressor, mode = "teacher", csv;
  int steps = -1, prompt_len = -1, threads = 0;
  std::uint64_t seed = 0;
  double kv_rtol = 1.0 / 512, kv_atol = 1e-3;
  bool no_kv_check = false;
};

std::vector<std::int64_t> read_token_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail("{}: cannot be read", path);
  std::vector<std::int64_t> tokens;
  std::string word;
  while (in >> word) {
    std::size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(word, &used);
    } catch (...) {
      used = 0;
    }
    if (used != word.size() || v < 0)
      fail("{}: token {}: expected a non-negative integer id, found \"{}\"", path, tokens.size(), word);
    tokens.push_back(v);
  }
  if (tokens.empty()) fail("{}: no token ids found (expected whitespace-separated integers)", path);
  return tokens;
}

int run(const DecodeCliOptions& o, const GlobalOptions& global) {
  if (o.dump.empty() == o.tokens_file.empty()) fail("decode: give exactly one of --dump or --tokens");
  if (o.mode != "teacher" && o.mode != "free") fail("--mode: expected teacher or free, found \"{}\"", o.mode);
  const auto compressor = Registry::global().build(o.compressor);
  const auto t0 = std::chrono::steady_clock::now();
  const ModelWeights model = load_model(o.model);
  const ModelConfig& c = model.config;

  std::vector<std::int64_t> tokens;
  std::optional<DumpReader> dump;
  DecodeOptions d;
  if (!o.dump.empty()) {
    dump.emplace(o.dump);
    tokens = dump->read_tokens();
    d.prompt_len = o.prompt_len > 0 ? o.prompt_len : dump->info().prompt_len;
  } else {
    tokens = read_token_file(o.tokens_file);
    d.prompt_len = o.prompt_len > 0 ? o.prompt_len : std::max<int>(1, static_cast<int>(tokens.size()) / 2);
  }
  d.steps = o.steps;
  d.free_running = o.mode == "free";
  d.threads = o.threads > 0 ? o.threads : omp_get_max_threads();
  d.seed = o.seed;
  if (!global.quiet)
    fmt::print(stderr, "decode: model {} loaded; {} and {} runs side by side...\n", o.model, "fp16", compressor->spec());
  const long long total_steps =
      d.steps > 0 ? d.steps : (d.free_running ? 64 : static_cast<long long>(tokens.size()) - d.prompt_len);
  Progress progress(fmt::format("decode {}", compressor->spec()), total_steps, !global.quiet, "steps");
  d.progress = &progress;
  const DecodeResult r = decode_compare(model, tokens, *compressor, d, (dump && !o.no_kv_check) ? &*dump : nullptr,
                                        o.kv_rtol, o.kv_atol);
  progress.finish();
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  fmt::print("model {} ({}): {} layers, hidden {}, {} heads / {} kv heads, d={}, vocab {}, rope {}\n", o.model,
             c.model.empty() ? "?" : c.model, c.num_layers, c.hidden_size, c.num_heads, c.num_kv_heads, c.head_dim,
             c.vocab_size, to_string(c.rope_style));
  fmt::print("compressor {}  ({} mode, prompt {} + {} decode steps, {} threads, {:.2f} s)\n", r.compressor, o.mode,
             r.prompt_len, r.steps.size(), d.threads, wall);
  if (r.kv_check.done)
    fmt::print("kv check vs {}: reference keys/values match the dump over {} positions (max |Δ| {:.3g}, {:.2f} of "
               "the float16 tolerance)\n",
               o.dump, r.kv_check.positions, r.kv_check.max_abs_diff, r.kv_check.max_excess);

  // A short per-step table: a handful of evenly spaced steps.
  std::vector<std::vector<std::string>> rows{{"step", "pos", "KL", "top1", "hidden rel", "attn rel", "CE ref", "CE comp"}};
  const int n = static_cast<int>(r.steps.size());
  const int stride = std::max(1, n / 10);
  for (int i = 0; i < n; ++i) {
    if (i % stride != 0 && i != n - 1) continue;
    const DecodeStep& s = r.steps[static_cast<std::size_t>(i)];
    rows.push_back({fmt::format("{}", s.step), fmt::format("{}", s.position), pretty(s.kl),
                    s.top1_ref == s.top1_comp ? "=" : "≠", pretty(s.hidden_rel), pretty(s.attn_rel_mean()),
                    pretty(s.ce_ref), pretty(s.ce_comp)});
  }
  fmt::print("{}", format_table(rows));
  fmt::print("summary: compression ratio {:.3f}; mean KL {} (max {}); top-1 agreement {:.4f}; hidden rel mean {} "
             "(last {})\n",
             r.compression_ratio, pretty(r.mean_kl), pretty(r.max_kl), r.top1_agreement, pretty(r.mean_hidden_rel),
             pretty(r.final_hidden_rel));
  if (!d.free_running)
    fmt::print("         cross-entropy ref {} comp {} nats → perplexity {} vs {} (ratio comp/ref {:.5f})\n",
               pretty(r.mean_ce_ref), pretty(r.mean_ce_comp), pretty(r.ppl_ref), pretty(r.ppl_comp), r.ppl_ratio);
  else
    fmt::print("         free run: first divergence {}; token match rate {:.4f}\n",
               r.first_divergence < 0 ? std::string("never") : fmt::format("at step {}", r.first_divergence),
               r.token_match_rate);
  std::string layers;
  for (std::size_t l = 0; l < r.mean_attn_rel.size(); ++l)
    layers += fmt::format("{}{}", l ? " " : "", pretty(r.mean_attn_rel[l]));
  fmt::print("         attention-output rel error per layer (mean over steps, heads): {}\n", layers);

  if (!o.csv.empty()) {
    // The rows of a sweep's decode_steps.csv (result_fields.cpp), for this one job.
    JobRecord record;
    const ResolvedSpec spec = Registry::global().resolve(o.compressor);
    const std::string source = !o.dump.empty() ? o.dump : o.tokens_file;
    record.identity = make_identity(spec, std::filesystem::path(source).filename().string(), source, ReplayOptions{},
                                    fmt::format("decode|{}|{}", o.mode, o.steps));
    record.decode = r;
    const ResultTable& table = result_table("decode_steps.csv");
    const TableLayout layout{{}, c.num_layers};
    std::ostringstream out;
    out << csv_line(table.header(layout));
    for (const auto& row : table_rows(table, layout, record)) out << csv_line(row);
    const std::string tmp = o.csv + ".tmp";
    {
      std::ofstream f(tmp, std::ios::binary);
      if (!f) fail("{}: cannot be written", o.csv);
      f << out.str();
      if (!f) fail("{}: write failed", o.csv);
    }
    if (std::rename(tmp.c_str(), o.csv.c_str()) != 0) fail("{}: cannot be written (rename failed)", o.csv);
    fmt::print("wrote {}\n", o.csv);
  }
  return 0;
}

}  // namespace

void add_decode_command(CLI::App& app, GlobalOptions& global, Action& action) {
  auto* cmd = app.add_subcommand("decode", "Model in the loop: decode with a compressed vs. uncompressed KV cache");
  auto o = std::make_shared<DecodeCliOptions>();
  cmd->add_option("-m,--model", o->model, "kvlab-model file (HDF5)")->required();
  cmd->add_option("-d,--dump", o->dump, "kvdump recorded from this model: its tokens and prompt length; the "
                                        "reference keys/values are checked against it");
  cmd->add_option("--tokens", o->tokens_file, "Text file of whitespace-separated token ids");
  cmd->add_option("-c,--compressor", o->compressor, "Compressor spec or preset, e.g. kivi-2bit")->required();
  cmd->add_option("--steps", o->steps, "Decode steps (teacher default: every recorded token; free default: 64)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--mode", o->mode, "teacher (feed the recorded tokens) or free (greedy generation)");
  cmd->add_option("--prompt-len", o->prompt_len, "Prompt tokens (default: the dump's prompt_len, or half the tokens)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--csv", o->csv, "Write one row per decode step to this CSV file");
  cmd->add_option("-j,--threads", o->threads, "Threads (default: all cores; results do not depend on it)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--seed", o->seed, "Seed of the compressors' random streams");
  cmd->add_option("--kv-rtol", o->kv_rtol, "Dump check: relative tolerance (default 1/512)");
  cmd->add_option("--kv-atol", o->kv_atol, "Dump check: absolute tolerance (default 1e-3)");
  cmd->add_flag("--no-kv-check", o->no_kv_check, "Skip the check of the reference keys/values against the dump");
  cmd->callback([&action, &global, o] { action = [o, &global] { return run(*o, global); }; });
}

}  // namespace kvlab::cli
