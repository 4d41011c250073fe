// kvlab inspect: validate a kvdump and summarise it (shapes, per-layer statistics).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "kvlab/core/progress.hpp"
#include "kvlab/core/error.hpp"
#include "kvlab/io/dump_reader.hpp"
#include "kvlab/io/dump_stats.hpp"

namespace kvlab::cli {

namespace {

// "0.9, 0.23, 0.017" (the first few, then "... (n)").
std::string list_numbers(const std::vector<double>& v) {
  std::string out;
  for (std::size_t i = 0; i < std::min<std::size_t>(v.size(), 4); ++i) out += fmt::format("{}{:.6g}", i ? ", " : "", v[i]);
  if (v.size() > 4) out += fmt::format(", ... ({} in all)", v.size());
  return out;
}

void print_rope(const DumpInfo& info) {
  bool any = false;
  for (int l = 0; l < info.num_layers; ++l) any = any || info.rope_of(l).has_value();
  if (!any) {
    fmt::print("rope         not recorded\n");
    return;
  }
  if (info.rope) {
    const RopeInfo& r = *info.rope;
    if (r.inv_freq.empty())
      fmt::print("rope         {}, theta {}", to_string(r.style), r.theta);
    else
      fmt::print("rope         {}, inv_freq [{}]{}", to_string(r.style), list_numbers(r.inv_freq),
                 r.theta > 0 ? fmt::format(" (rope_theta {} not used)", r.theta) : "");
  } else {
    fmt::print("rope         {}, per-layer frequencies only", to_string(info.rope_style));
  }
  const int rd = info.rotary_dim > 0 ? info.rotary_dim : info.head_dim;
  fmt::print(", rotary_dim {}{}", rd, rd < info.head_dim ? fmt::format(" of {}", info.head_dim) : "");
  if (info.rope && info.rope->attention_scaling != 1.0) fmt::print(", attention scaling {}", info.rope->attention_scaling);
  fmt::print("\n");
  for (int l = 0; l < info.num_layers && l < static_cast<int>(info.layer_attention.size()); ++l) {
    const DumpInfo::LayerAttention& la = info.layer_attention[static_cast<std::size_t>(l)];
    if (!la.rope_inv_freq.empty()) fmt::print("  layer {:<4}  inv_freq [{}]\n", l, list_numbers(la.rope_inv_freq));
    if (la.rope_attention_scaling) fmt::print("  layer {:<4}  attention scaling {}\n", l, *la.rope_attention_scaling);
  }
}

void print_attention(const DumpInfo& info) {
  if (info.attn_scale)
    fmt::print("attention    scale {} (attn_scale)", *info.attn_scale);
  else
    fmt::print("attention    scale 1/sqrt(head_dim) = {:.6g} (default)", 1.0 / std::sqrt(static_cast<double>(info.head_dim)));
  if (info.attn_logit_softcap) fmt::print(", logit soft-cap {}", *info.attn_logit_softcap);
  std::string windows;
  for (int l = 0; l < static_cast<int>(info.layer_attention.size()); ++l) {
    const int w = info.layer_attention[static_cast<std::size_t>(l)].sliding_window;
    if (w > 0) windows += fmt::format("{}{}: {}", windows.empty() ? "" : ", ", l, w);
  }
  fmt::print(", {}\n", windows.empty() ? "full causal attention" : "sliding window (layer: W) " + windows);
}

struct InspectArgs {
  std::string dump;
  std::vector<int> layers;
  bool no_stats = false;
  std::string csv;
};

std::string one_line(const std::string& text, std::size_t max_chars) {
  std::string out;
  for (char c : text) out += (c == '\n' || c == '\r' || c == '\t') ? ' ' : c;
  if (out.size() > max_chars) out = out.substr(0, max_chars) + "...";
  return out;
}

int run_inspect(const InspectArgs& args, bool quiet) {
  const DumpReader reader(args.dump);
  const DumpInfo& info = reader.info();
  std::error_code ec;
  const auto bytes = std::filesystem::file_size(args.dump, ec);

  std::vector<int> layers = args.layers;
  if (layers.empty())
    for (int l = 0; l < info.num_layers; ++l) layers.push_back(l);
  for (int l : layers)
    if (l < 0 || l >= info.num_layers)
      fail("{}: --layers: layer {} out of range (the dump has layers 0..{})", args.dump, l, info.num_layers - 1);
  if (args.no_stats && !args.csv.empty()) fail("inspect: --csv writes the per-layer statistics; drop --no-stats");

  const std::string kv_shape = fmt::format("[{}, {}, {}]", info.num_kv_heads, info.seq_len, info.head_dim);
  fmt::print("file         {} ({:.1f} MB)\n", args.dump, static_cast<double>(bytes) / 1e6);
  fmt::print("format       kvdump v1, valid\n");
  fmt::print("model        {}\n", info.model.empty() ? "(not recorded)" : one_line(info.model, 100));
  fmt::print("shape        {} layers, {} heads, {} kv heads (GQA group {}), head_dim {}\n", info.num_layers,
             info.num_heads, info.num_kv_heads, info.group_size(), info.head_dim);
  fmt::print("sequence     seq_len {}, prompt_len {} ({} decoded)\n", info.seq_len, info.prompt_len,
             info.seq_len - info.prompt_len);
  fmt::print("dtype        {}\n", info.dtype);
  fmt::print("keys/values  {} per layer\n", kv_shape);
  if (info.has_queries)
    fmt::print("queries      [{}, {}, {}] per layer\n", info.num_heads, info.seq_len, info.head_dim);
  else
    fmt::print("queries      none\n");
  print_rope(info);
  print_attention(info);
  fmt::print("tokens       {}\n", info.has_tokens ? "yes" : "no");
  if (!info.text.empty()) fmt::print("text         {}\n", one_line(info.text, 100));
  if (args.no_stats) return 0;

  std::vector<LayerStats> stats;
  Progress progress(fmt::format("inspect {}", args.dump), static_cast<long long>(layers.size()), !quiet, "layers");
  for (int l : layers) {
    stats.push_back(layer_stats(reader.read_layer(l, /*with_queries=*/false)));
    progress.advance();
  }
  progress.finish();

  fmt::print("\nper layer (mean over kv heads)\n");
  fmt::print("{:>5}  {:>10}  {:>10}  {:>9}  {:>9}  {:>8}  {:>8}\n", "layer", "K norm", "V norm", "K outlier",
             "V outlier", "K rank90", "V rank90");
  for (const LayerStats& s : stats)
    fmt::print("{:>5}  {:>10.2f}  {:>10.2f}  {:>9.2f}  {:>9.2f}  {:>8.1f}  {:>8.1f}\n", s.layer, s.key_norm,
               s.value_norm, s.key_outlier_ratio, s.value_outlier_ratio, s.key_rank90, s.value_rank90);
  fmt::print(
      "K/V norm: ‖K‖_F, ‖V‖_F of one head's [T × d] block. K/V outlier: max over channels of the channel's mean |x|, "
      "divided by\nthe median over channels of it (≫ 1: outlier channels, why per-channel key quantization helps). "
      "K/V rank90: singular values\nneeded to hold 90% of ‖X‖_F² (effective rank: low means a low-rank term can "
      "capture much of it).\n");

  if (!args.csv.empty()) {
    std::FILE* f = std::fopen(args.csv.c_str(), "w");
    if (f == nullptr) fail("{}: cannot write CSV file", args.csv);
    fmt::print(f, "dump,layer,key_norm,value_norm,key_outlier_ratio,value_outlier_ratio,key_rank90,value_rank90\n");
    for (const LayerStats& s : stats)
      fmt::print(f, "{},{},{:.6g},{:.6g},{:.6g},{:.6g},{:.6g},{:.6g}\n", args.dump, s.layer, s.key_norm,
                 s.value_norm, s.key_outlier_ratio, s.value_outlier_ratio, s.key_rank90, s.value_rank90);
    const bool ok = std::ferror(f) == 0;
    if (std::fclose(f) != 0 || !ok) fail("{}: error while writing CSV file", args.csv);
  }
  return 0;
}

}  // namespace

void add_inspect_command(CLI::App& app, GlobalOptions& global, Action& action) {
  auto args = std::make_shared<InspectArgs>();
  CLI::App* cmd = app.add_subcommand("inspect", "Validate a kvdump and summarise it (shapes, per-layer statistics)");
  cmd->add_option("dump", args->dump, "kvdump HDF5 file")->required();
  cmd->add_option("--layers", args->layers, "Only these layers, comma separated (default: all)")->delimiter(',');
  cmd->add_flag("--no-stats", args->no_stats, "Validate and print the summary only");
  cmd->add_option("--csv", args->csv, "Also write the per-layer table to this CSV file");
  cmd->callback([args, &action, &global] { action = [args, &global] { return run_inspect(*args, global.quiet); }; });
}

}  // namespace kvlab::cli
