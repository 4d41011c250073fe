// kvlab synth: write a deterministic synthetic kvdump (docs/synth.md).
#include <fmt/format.h>

#include <cstdio>
#include <memory>
#include <string>

#include "cli/cli_util.hpp"
#include "cli/commands.hpp"
#include "kvlab/core/progress.hpp"
#include "kvlab/core/error.hpp"
#include "kvlab/io/synth.hpp"

namespace kvlab::cli {

namespace {
struct SynthArgs {
  std::string out;
  SynthOptions options;
  bool no_rope = false, no_sink = false, no_queries = false, float32 = false;
  std::string rope_style = "neox";
  std::string window_layers;
  int threads = 0;
};
}  // namespace

void add_synth_command(CLI::App& app, GlobalOptions& global, Action& action) {
  auto args = std::make_shared<SynthArgs>();
  CLI::App* cmd = app.add_subcommand("synth", "Write a synthetic kvdump with controllable structure (docs/synth.md)");
  SynthOptions& o = args->options;
  cmd->add_option("out", args->out, "Output HDF5 file")->required();
  cmd->add_option("--preset", o.preset, "Shape preset: tiny, small, llama2-7b, llama3-8b")->capture_default_str();
  cmd->add_option("--layers", o.num_layers, "Number of layers (default: preset)");
  cmd->add_option("--heads", o.num_heads, "Query heads (default: preset)");
  cmd->add_option("--kv-heads", o.num_kv_heads, "KV heads; must divide --heads (default: preset)");
  cmd->add_option("--head-dim", o.head_dim, "Channels per head (default: preset)");
  cmd->add_option("--tokens", o.seq_len, "Sequence length (default: preset)");
  cmd->add_option("--prompt", o.prompt_len, "Prompt (prefill) length (default: preset, at most tokens/2)");
  cmd->add_option("--seed", o.seed, "Random seed")->capture_default_str();
  cmd->add_option("--outlier-channels", o.outlier_channels,
                  "Persistent key outlier channels per layer (default: head_dim/32, at least 1)");
  cmd->add_option("--outlier-scale", o.outlier_scale, "Scale of the key outlier channels (1 = none)")
      ->capture_default_str();
  cmd->add_flag("--no-rope", args->no_rope, "Do not apply RoPE (no rope attributes written)");
  cmd->add_option("--rope-style", args->rope_style, "RoPE layout: neox (rotate-half) or gptj (interleaved)")
      ->capture_default_str();
  cmd->add_option("--rope-theta", o.rope_theta, "RoPE base (default: preset, 10000 or 500000)");
  cmd->add_flag("--no-sink", args->no_sink, "No attention-sink first token");
  cmd->add_option("--lowrank-share", o.lowrank_share, "Fraction of key energy in a low-rank part, in [0, 1]")
      ->capture_default_str();
  cmd->add_option("--peakiness", o.query_peakiness, "Logit boost (nats) of each query's target keys; 0 = none")
      ->capture_default_str();
  cmd->add_option("--attn-scale", o.attn_scale, "Attribute attn_scale: factor on q.k (default 1/sqrt(head_dim))");
  cmd->add_option("--softcap", o.attn_logit_softcap, "Attribute attn_logit_softcap: logits become c*tanh(s/c)");
  cmd->add_option("--sliding-window", o.sliding_window, "Attribute sliding_window W on --window-layers (0: none)");
  cmd->add_option("--window-layers", args->window_layers, "Layers with the sliding window, e.g. 0,2,4-7 (default: all)");
  cmd->add_flag("--no-queries", args->no_queries, "Do not record queries");
  cmd->add_flag("--float32", args->float32, "Store float32 instead of float16");
  cmd->add_option("--threads", args->threads, "Generator threads (default: all cores); output does not depend on it");

  cmd->callback([args, &action, &global] {
    action = [args, &global]() -> int {
      SynthOptions options = args->options;
      options.rope = !args->no_rope;
      options.sink = !args->no_sink;
      options.with_queries = !args->no_queries;
      options.float16 = !args->float32;
      if (args->rope_style != "neox" && args->rope_style != "gptj")
        fail("synth: --rope-style: expected neox or gptj, found '{}'", args->rope_style);
      options.rope_style = parse_rope_style(args->rope_style);
      if (!args->window_layers.empty()) options.window_layers = parse_index_list(args->window_layers, "--window-layers");
      if (args->threads < 0) fail("synth: --threads must be >= 0, found {}", args->threads);
      const SynthOptions resolved = resolve_synth_options(options);
      Progress progress(fmt::format("synth {}", args->out), resolved.num_layers, !global.quiet, "layers");
      const SynthResult r = write_synth_dump(args->out, options, args->threads, &progress);
      progress.finish();
      const DumpInfo& i = r.info;
      fmt::print("wrote {}: {} layers, {} heads / {} kv heads, head_dim {}, {} tokens (prompt {}), {}{}, {:.1f} MB in "
                 "{:.2f} s\n",
                 args->out, i.num_layers, i.num_heads, i.num_kv_heads, i.head_dim, i.seq_len, i.prompt_len, i.dtype,
                 i.has_queries ? ", queries" : "", static_cast<double>(r.bytes) / 1e6, r.seconds);
      return 0;
    };
  });
}

}  // namespace kvlab::cli
