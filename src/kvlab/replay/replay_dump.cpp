#include "kvlab/replay/replay_dump.hpp"

#include <omp.h>

#include <exception>

#include "kvlab/core/error.hpp"
#include "kvlab/replay/replay_block.hpp"

namespace kvlab {

std::vector<int> selected_layers(const DumpInfo& info, const ReplayOptions& opts) {
  std::vector<int> layers = opts.layers;
  if (layers.empty())
    for (int l = 0; l < info.num_layers; ++l) layers.push_back(l);
  for (int l : layers)
    if (l < 0 || l >= info.num_layers)
      fail("{}: layer {} is out of range (the dump has {} layers)", info.path, l, info.num_layers);
  return layers;
}

int selected_decode_steps(const DumpInfo& info, const ReplayOptions& opts) {
  const int recorded = info.seq_len - info.prompt_len;
  return opts.max_steps < 0 ? recorded : std::min(recorded, opts.max_steps);
}

void check_compatible(const DumpInfo& info, const Compressor& compressor, const ReplayOptions& opts) {
  if (compressor.needs_queries() && !info.has_queries)
    fail("{}: compressor '{}' needs recorded queries, but the dump has none", info.path, compressor.spec());
  if (compressor.needs_rope() && !info.rope)
    fail("{}: compressor '{}' undoes RoPE, but the dump records no rope_theta/rope_style", info.path,
         compressor.spec());
  if (opts.attention && !info.has_queries)
    fail("{}: attention metrics need recorded queries, but the dump has none (disable attention metrics)",
         info.path);
}

std::vector<JobResult> replay_dump(const DumpReader& reader, std::span<const Compressor* const> jobs,
                                   const ReplayOptions& opts, Progress* progress) {
  const DumpInfo& info = reader.info();
  for (const Compressor* c : jobs) check_compatible(info, *c, opts);
  const std::vector<int> layers = selected_layers(info, opts);
  const int steps = selected_decode_steps(info, opts);
  const int tokens = info.prompt_len + steps;
  const std::vector<int> eval_steps = evaluation_steps(steps, opts.eval_every);
  const bool need_queries = opts.attention;
  bool any_needs_queries = need_queries;
  for (const Compressor* c : jobs) any_needs_queries = any_needs_queries || c->needs_queries();

  const int num_jobs = static_cast<int>(jobs.size());
  const int heads = info.num_kv_heads;
  const int g = info.group_size();
  std::vector<JobResult> results(static_cast<std::size_t>(num_jobs));
  for (auto& r : results) {
    r.blocks.resize(layers.size() * static_cast<std::size_t>(heads));
    r.prompt_len = info.prompt_len;
    r.decode_steps = steps;
    r.attention = opts.attention;
  }

  const int threads = opts.threads > 0 ? opts.threads : omp_get_max_threads();
  for (std::size_t li = 0; li < layers.size(); ++li) {
    const int layer = layers[li];
    const LayerData data = reader.read_layer(layer, any_needs_queries, tokens);

    // Per-layer calibration and contexts: serial, before the parallel region.
    std::vector<BlockContext> base(static_cast<std::size_t>(num_jobs));
    for (int j = 0; j < num_jobs; ++j) {
      BlockContext& ctx = base[j];
      ctx.layer = layer;
      ctx.num_layers = info.num_layers;
      ctx.num_kv_heads = heads;
      ctx.head_dim = info.head_dim;
      ctx.group_size = g;
      ctx.prompt_len = info.prompt_len;
      ctx.max_tokens = tokens;
      ctx.seed = opts.seed;
      ctx.rope = info.rope;
      const LayerView view{data.keys, data.values, data.queries};
      ctx.calibration = jobs[j]->calibrate(view, ctx);
    }

    const int items = num_jobs * heads;
    std::vector<std::exception_ptr> errors(static_cast<std::size_t>(items));
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
    for (int item = 0; item < items; ++item) {
      const int j = item / heads, h = item % heads;
      try {
        BlockContext ctx = base[j];
        ctx.kv_head = h;
        const std::span<const Matrix> queries =
            data.queries.empty() ? std::span<const Matrix>() : std::span<const Matrix>(data.queries).subspan(h * g, g);
        const BlockInput in{data.keys[h], data.values[h], queries, info.prompt_len, steps};
        results[j].blocks[li * heads + h] = replay_block(*jobs[j], ctx, in, eval_steps, opts.attention);
      } catch (...) {
        errors[item] = std::current_exception();
      }
      if (progress) progress->advance();
    }
    for (const auto& e : errors)
      if (e) std::rethrow_exception(e);
  }
  return results;
}

}  // namespace kvlab
