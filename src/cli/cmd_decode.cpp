// `kvlab decode`: model in the loop. Runs a kvlab-model forward with an
// uncompressed reference cache once per dump (or token file), then once per
// (compressor, seed) with that compressor's cache, and reports per decode step
// how far each compressed run drifts (KL, top-1, hidden-state and
// attention-output error, cross-entropy). With several dumps or seeds it also
// prints, per compressor, the mean over them with a 95 % Student-t interval.
#include <fmt/format.h>
#include <omp.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include "cli/cli_util.hpp"
#include "cli/commands.hpp"
#include "cli/decode_text.hpp"
#include "kvlab/compressors/registry.hpp"
#include "kvlab/core/csv.hpp"
#include "kvlab/core/error.hpp"
#include "kvlab/core/interval.hpp"
#include "kvlab/core/progress.hpp"
#include "kvlab/io/dump_reader.hpp"
#include "kvlab/model/decode_compare.hpp"
#include "kvlab/report/job_identity.hpp"
#include "kvlab/report/result_fields.hpp"

namespace kvlab::cli {

namespace {

struct DecodeCliOptions {
  std::string model, tokens_file, mode = "teacher", csv;
  std::vector<std::string> dumps, compressors;
  std::vector<std::uint64_t> seeds;
  int steps = -1, prompt_len = -1, threads = 0, show_tokens = 160;
  double kv_rtol = 1e-2;
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

// One sequence the model decodes: a dump or a token file.
struct Source {
  std::string path, label;
  std::optional<DumpReader> dump;
  std::vector<std::int64_t> tokens;
  int prompt_len = 0;
};

// One compressed run against its source's reference.
struct Sample {
  std::size_t source = 0;
  std::string compressor;  // as given
  DecodeResult result;
};

std::string kv_line(const KvCheck& k) {
  return fmt::format("K/V vs dump: max rel {:.1e} ({} layer {}), tol {:g}: {} ({} positions)", k.max_rel,
                     k.worst_tensor, k.worst_layer, k.rtol, k.ok() ? "ok" : "FAILED", k.positions);
}

void print_detail(const DecodeResult& r, const std::string& label, const ModelWeights& model,
                  const std::vector<std::int64_t>& prompt, int show_tokens) {
  // A short per-step table: a handful of evenly spaced steps.
  std::vector<std::vector<std::string>> rows{
      {"step", "pos", "KL", "top1", "hidden rel", "attn rel", "CE ref", "CE comp"}};
  const int n = static_cast<int>(r.steps.size());
  const int stride = std::max(1, n / 10);
  for (int i = 0; i < n; ++i) {
    if (i % stride != 0 && i != n - 1) continue;
    const DecodeStep& s = r.steps[static_cast<std::size_t>(i)];
    rows.push_back({fmt::format("{}{}", s.step, s.shared_context ? "" : "*"), fmt::format("{}", s.position),
                    pretty(s.kl), s.top1_ref == s.top1_comp ? "=" : "≠", pretty(s.hidden_rel),
                    pretty(s.attn_rel_mean()), pretty(s.ce_ref), pretty(s.ce_comp)});
  }
  fmt::print("{}", format_table(rows));
  if (r.free_running && r.first_divergence >= 0) fmt::print("(* = after the first divergence: the contexts differ)\n");
  if (!r.free_running) {
    fmt::print("summary: compression ratio {:.3f} (mean {:.3f} bits/element over the steps); mean KL {} (max {}); "
               "top-1 agreement {:.4f}; hidden rel mean {} (last {})\n",
               r.compression_ratio, r.mean_bits_per_element, pretty(r.mean_kl), pretty(r.max_kl), r.top1_agreement, pretty(r.mean_hidden_rel),
               pretty(r.final_hidden_rel));
    fmt::print("         cross-entropy ref {} comp {} nats → perplexity {} vs {} (ratio comp/ref {:.5f})\n",
               pretty(r.mean_ce_ref), pretty(r.mean_ce_comp), pretty(r.ppl_ref), pretty(r.ppl_comp), r.ppl_ratio);
  } else {
    fmt::print("summary: steps to first divergence {} of {}; compression ratio {:.3f} (mean {:.3f} bits/element)\n",
               r.first_divergence < 0 ? fmt::format("≥ {} (never diverged)", n) : fmt::format("{}", r.first_divergence),
               n, r.compression_ratio, r.mean_bits_per_element);
    fmt::print("         before it ({} shared-context steps): mean KL {} (max {}); top-1 agreement {:.4f}; hidden rel "
               "mean {}\n",
               r.shared_steps, pretty(r.mean_kl), pretty(r.max_kl), r.top1_agreement, pretty(r.mean_hidden_rel));
    fmt::print("         token match rate over all steps {:.4f}\n", r.token_match_rate);
  }
  std::string layers;
  for (std::size_t l = 0; l < r.mean_attn_rel.size(); ++l)
    layers += fmt::format("{}{}", l ? " " : "", pretty(r.mean_attn_rel[l]));
  fmt::print("         attention-output rel error per layer (mean over {}steps, heads): {}\n",
             r.free_running ? "shared-context " : "", layers);
  if (r.free_running && model.vocab.has_text() && show_tokens > 0) {
    SideBySide layout;
    layout.left_label = "reference (fp16 cache)";
    layout.right_label = fmt::format("compressed ({})", label);
    layout.max_tokens = show_tokens;
    fmt::print("generations:\n{}",
               side_by_side(model.vocab, prompt, r.generated_ref, r.generated_comp, r.first_divergence, layout));
  } else if (r.free_running && show_tokens > 0) {
    fmt::print("(the model file has no vocabulary: generations are in --csv as token ids)\n");
  }
}

// The headline metrics of one sample, in table order.
std::vector<std::pair<std::string, double>> headline(const DecodeResult& r) {
  if (r.free_running)
    return {{"bits/elem", r.mean_bits_per_element},
            {"steps to div.", static_cast<double>(r.steps_to_divergence())},
            {"KL (shared)", r.mean_kl},
            {"top-1 (shared)", r.top1_agreement},
            {"match rate", r.token_match_rate}};
  return {{"bits/elem", r.mean_bits_per_element}, {"mean KL", r.mean_kl}, {"top-1", r.top1_agreement},
          {"hidden rel", r.mean_hidden_rel}, {"ppl ratio", r.ppl_ratio}};
}

void print_samples(const std::vector<Sample>& samples, const std::vector<Source>& sources,
                   const std::vector<std::string>& compressors) {
  // Per sample.
  std::vector<std::vector<std::string>> rows{{"dump", "compressor", "seed"}};
  for (const auto& [name, v] : headline(samples.front().result)) rows.front().push_back(name);
  for (const Sample& s : samples) {
    std::vector<std::string> row{sources[s.source].label, s.compressor, fmt::format("{}", s.result.seed)};
    for (const auto& [name, v] : headline(s.result)) row.push_back(pretty(v));
    rows.push_back(std::move(row));
  }
  fmt::print("{}", format_table(rows));
  // Per compressor: the dumps are the independent samples. Each dump's value
  // is its mean over seeds (for a deterministic method the seeds repeat the
  // same numbers); the interval is over dumps, and the seeds' own spread is
  // shown for the headline metric.
  const auto names = headline(samples.front().result);
  std::vector<std::vector<std::string>> agg{{"compressor", "dumps"}};
  for (const auto& [name, v] : names) agg.front().push_back(name);
  agg.front().push_back(fmt::format("{}: sd over seeds", names[1].first));
  for (const std::string& c : compressors) {
    std::vector<std::vector<double>> per_dump(names.size());  // [metric][dump]
    std::vector<double> seed_sd;
    for (std::size_t src = 0; src < sources.size(); ++src) {
      std::vector<std::vector<double>> by_seed(names.size());
      for (const Sample& s : samples)
        if (s.compressor == c && s.source == src) {
          const auto h = headline(s.result);
          for (std::size_t m = 0; m < h.size(); ++m) by_seed[m].push_back(h[m].second);
        }
      if (by_seed.front().empty()) continue;
      for (std::size_t m = 0; m < names.size(); ++m) per_dump[m].push_back(mean_interval95(by_seed[m]).mean);
      if (by_seed[1].size() > 1) seed_sd.push_back(mean_interval95(by_seed[1]).sd);
    }
    std::vector<std::string> row{c, fmt::format("{}", per_dump.front().size())};
    for (const auto& values : per_dump) {
      const MeanInterval m = mean_interval95(values);
      row.push_back(m.n < 2 ? pretty(m.mean) : fmt::format("{} ± {}", pretty(m.mean), pretty(m.half_width)));
    }
    row.push_back(seed_sd.empty() ? "n/a" : pretty(mean_interval95(seed_sd).mean));
    agg.push_back(std::move(row));
  }
  fmt::print("\nper compressor: mean over dumps (each dump's value averaged over its seeds) ± half-width of the 95 % "
             "confidence interval (Student t, dumps − 1 degrees of freedom); last column: the seed-to-seed standard "
             "deviation, mean over dumps:\n{}",
             format_table(agg));
}

void write_csv(const std::string& path, const std::vector<Sample>& samples, const std::vector<Source>& sources,
               const DecodeCliOptions& o, int layers) {
  // The rows of a sweep's decode_steps.csv (result_fields.cpp), one job per sample.
  const ResultTable& table = result_table("decode_steps.csv");
  const TableLayout layout{{}, layers};
  std::ostringstream out;
  out << csv_line(table.header(layout));
  for (const Sample& s : samples) {
    const Source& src = sources[s.source];
    JobRecord record;
    ReplayOptions replay;
    replay.seed = s.result.seed;
    record.identity = make_identity(Registry::global().resolve(s.compressor), src.label, src.path, replay,
                                    fmt::format("decode|{}|{}", o.mode, o.steps));
    record.decode = s.result;
    for (const auto& row : table_rows(table, layout, record)) out << csv_line(row);
  }
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary);
    if (!f) fail("{}: cannot be written", path);
    f << out.str();
    if (!f) fail("{}: write failed", path);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) fail("{}: cannot be written (rename failed)", path);
  fmt::print("wrote {}\n", path);
}

int run(const DecodeCliOptions& o, const GlobalOptions& global) {
  if (o.dumps.empty() == o.tokens_file.empty()) fail("decode: give --dump (repeatable) or --tokens, not both");
  if (o.mode != "teacher" && o.mode != "free") fail("--mode: expected teacher or free, found \"{}\"", o.mode);
  if (!(o.kv_rtol > 0)) fail("--kv-rtol: expected a positive number, found {}", o.kv_rtol);
  std::vector<std::unique_ptr<Compressor>> compressors;
  for (const std::string& spec : o.compressors) compressors.push_back(Registry::global().build(spec));
  const std::vector<std::uint64_t> seeds = o.seeds.empty() ? std::vector<std::uint64_t>{0} : o.seeds;
  const auto t0 = std::chrono::steady_clock::now();
  const ModelWeights model = load_model(o.model);
  const ModelConfig& c = model.config;

  std::vector<Source> sources;
  if (!o.dumps.empty()) {
    for (const std::string& path : o.dumps) {
      Source s;
      s.path = path;
      s.label = std::filesystem::path(path).filename().string();
      s.dump.emplace(path);
      s.tokens = s.dump->read_tokens();
      s.prompt_len = o.prompt_len > 0 ? o.prompt_len : s.dump->info().prompt_len;
      sources.push_back(std::move(s));
    }
  } else {
    Source s;
    s.path = o.tokens_file;
    s.label = std::filesystem::path(o.tokens_file).filename().string();
    s.tokens = read_token_file(o.tokens_file);
    s.prompt_len = o.prompt_len > 0 ? o.prompt_len : std::max<int>(1, static_cast<int>(s.tokens.size()) / 2);
    sources.push_back(std::move(s));
  }
  DecodeOptions d;
  d.steps = o.steps;
  d.free_running = o.mode == "free";
  d.threads = o.threads > 0 ? o.threads : omp_get_max_threads();
  KvCheckOptions kv{!o.no_kv_check, o.kv_rtol};

  fmt::print("model {} ({}): {} layers, hidden {}, {} heads / {} kv heads, d={}, vocab {}, rope {}\n", o.model,
             c.model.empty() ? "?" : c.model, c.num_layers, c.hidden_size, c.num_heads, c.num_kv_heads, c.head_dim,
             c.vocab_size, to_string(c.rope_style));
  std::vector<Sample> samples;
  const bool single = sources.size() * compressors.size() * seeds.size() == 1;
  for (std::size_t si = 0; si < sources.size(); ++si) {
    Source& src = sources[si];
    d.prompt_len = src.prompt_len;
    const int steps = resolve_decode_steps(d, static_cast<int>(src.tokens.size()));
    ReferenceRun ref;
    {
      Progress progress(fmt::format("reference {}", src.label), steps, !global.quiet, "steps");
      d.progress = &progress;
      ref = run_reference(model, src.tokens, d, src.dump ? &*src.dump : nullptr, kv);
      progress.finish();
    }
    fmt::print("{}: prompt {} + {} decode steps, {} mode{}\n", src.label, src.prompt_len, steps, o.mode,
               ref.kv_check.done ? "; " + kv_line(ref.kv_check) : (src.dump ? "; K/V check off" : ""));
    for (std::size_t ci = 0; ci < compressors.size(); ++ci)
      for (std::uint64_t seed : seeds) {
        Progress progress(fmt::format("decode {} seed {}", compressors[ci]->spec(), seed), steps, !global.quiet,
                          "steps");
        d.progress = &progress;
        d.seed = seed;
        Sample s{si, o.compressors[ci], compare_to_reference(model, ref, *compressors[ci], d)};
        progress.finish();
        if (single) {
          fmt::print("compressor {}  (seed {}, {} threads)\n", s.result.compressor, seed, d.threads);
          print_detail(s.result, s.compressor, model, ref.prompt, o.show_tokens);
        } else if (d.free_running && model.vocab.has_text() && o.show_tokens > 0) {
          fmt::print("\n{}, {} seed {}: steps to first divergence {}\n", src.label, s.compressor, seed,
                     s.result.steps_to_divergence());
          SideBySide layout{"reference (fp16 cache)", fmt::format("compressed ({})", s.compressor), 48,
                            o.show_tokens};
          fmt::print("{}", side_by_side(model.vocab, ref.prompt, s.result.generated_ref, s.result.generated_comp,
                                        s.result.first_divergence, layout));
        }
        samples.push_back(std::move(s));
      }
  }
  if (!single) print_samples(samples, sources, o.compressors);
  fmt::print("({:.2f} s, {} threads)\n", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
             d.threads);
  if (!o.csv.empty()) write_csv(o.csv, samples, sources, o, c.num_layers);
  return 0;
}

}  // namespace

void add_decode_command(CLI::App& app, GlobalOptions& global, Action& action) {
  auto* cmd = app.add_subcommand("decode", "Model in the loop: decode with compressed vs. uncompressed KV caches");
  auto o = std::make_shared<DecodeCliOptions>();
  cmd->add_option("-m,--model", o->model, "kvlab-model file (HDF5)")->required();
  cmd->add_option("-d,--dump", o->dumps, "kvdump recorded from this model (repeatable): its tokens and prompt length; "
                                         "the reference keys/values are checked against it");
  cmd->add_option("--tokens", o->tokens_file, "Text file of whitespace-separated token ids");
  cmd->add_option("-c,--compressor", o->compressors, "Compressor spec or preset (repeatable), e.g. kivi-2bit")
      ->required();
  cmd->add_option("--steps", o->steps, "Decode steps (teacher default: every recorded token; free default: 64)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--mode", o->mode, "teacher (feed the recorded tokens) or free (greedy generation)");
  cmd->add_option("--prompt-len", o->prompt_len, "Prompt tokens (default: the dump's prompt_len, or half the tokens)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--csv", o->csv, "Write one row per (dump, compressor, seed, decode step) to this CSV file");
  cmd->add_option("-j,--threads", o->threads, "Threads (default: all cores; results do not depend on it)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--seed", o->seeds, "Seed of the compressors' random streams (repeatable; default 0)");
  cmd->add_option("--kv-rtol", o->kv_rtol,
                  "Dump check: bound on each layer's ‖K_ref − K_dump‖/‖K_dump‖ (and V) (default 1e-2)");
  cmd->add_flag("--no-kv-check", o->no_kv_check, "Skip the check of the reference keys/values against the dump");
  cmd->add_option("--show-tokens", o->show_tokens,
                  "Free mode with a vocabulary: generated tokens shown side by side (0: none; default 160)")
      ->check(CLI::NonNegativeNumber);
  cmd->callback([&action, &global, o] { action = [o, &global] { return run(*o, global); }; });
}

}  // namespace kvlab::cli
