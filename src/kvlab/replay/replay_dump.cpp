#include "kvlab/replay/replay_dump.hpp"

#include <omp.h>

#include <chrono>
#include <exception>

#include "kvlab/core/error.hpp"
#include "kvlab/compressors/layer_state.hpp"
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

namespace {

// A work item: kv heads [first_head, first_head + heads) of one job on one
// layer — one head for block-scoped compressors, the whole layer for
// layer-scoped ones.
struct WorkItem {
  int job = 0, first_head = 0, heads = 1;
};

}  // namespace

std::vector<JobResult> replay_dump(const DumpReader& reader, std::span<const Compressor* const> jobs,
                                   const ReplayOptions& opts, Progress* progress) {
  const DumpInfo& info = reader.info();
  const std::vector<int> layers = selected_layers(info, opts);
  const int steps = selected_decode_steps(info, opts);
  const int tokens = info.prompt_len + steps;
  const std::vector<int> eval_steps = evaluation_steps(steps, opts.eval_every);
  const int num_jobs = static_cast<int>(jobs.size());
  const int heads = info.num_kv_heads;
  const int g = info.group_size();

  std::vector<JobResult> results(static_cast<std::size_t>(num_jobs));
  std::vector<WorkItem> items;
  bool need_queries = opts.attention;
  for (int j = 0; j < num_jobs; ++j) {
    JobResult& r = results[static_cast<std::size_t>(j)];
    r.blocks.resize(layers.size() * static_cast<std::size_t>(heads));
    r.prompt_len = info.prompt_len;
    r.decode_steps = steps;
    r.attention = opts.attention;
    try {
      check_compatible(info, *jobs[j], opts);
    } catch (const Error& e) {
      r.error = e.what();
      if (progress) progress->advance(static_cast<long long>(layers.size()) * heads);
      continue;
    }
    need_queries = need_queries || jobs[j]->needs_queries();
    if (jobs[j]->scope() == Compressor::Scope::Layer)
      items.push_back({j, 0, heads});
    else
      for (int h = 0; h < heads; ++h) items.push_back({j, h, 1});
  }

  const int threads = opts.threads > 0 ? opts.threads : omp_get_max_threads();
  const int num_items = static_cast<int>(items.size());
  std::vector<std::string> errors(static_cast<std::size_t>(num_items));
  std::vector<double> seconds(static_cast<std::size_t>(num_items), 0.0);
  for (std::size_t li = 0; li < layers.size(); ++li) {
    const int layer = layers[li];
    const LayerData data = reader.read_layer(layer, need_queries, tokens);

    // Per-layer calibration and contexts: serial, before the parallel region.
    std::vector<BlockContext> base(static_cast<std::size_t>(num_jobs));
    for (int j = 0; j < num_jobs; ++j) {
      if (!results[static_cast<std::size_t>(j)].ok()) continue;
      BlockContext& ctx = base[static_cast<std::size_t>(j)];
      ctx.layer = layer;
      ctx.num_layers = info.num_layers;
      ctx.num_kv_heads = heads;
      ctx.head_dim = info.head_dim;
      ctx.group_size = g;
      ctx.prompt_len = info.prompt_len;
      ctx.max_tokens = tokens;
      ctx.seed = opts.seed;
      ctx.rope = info.rope;
      try {
        ctx.calibration = jobs[j]->calibrate(LayerView{data.keys, data.values, data.queries}, ctx);
      } catch (const Error& e) {
        results[static_cast<std::size_t>(j)].error = e.what();
      }
    }

#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
    for (int i = 0; i < num_items; ++i) {
      const WorkItem& item = items[static_cast<std::size_t>(i)];
      JobResult& result = results[static_cast<std::size_t>(item.job)];
      if (result.ok() && errors[static_cast<std::size_t>(i)].empty()) {
        const auto t0 = std::chrono::steady_clock::now();
        try {
          const BlockContext& ctx = base[static_cast<std::size_t>(item.job)];
          UnitInput unit;
          unit.layer = layer;
          unit.first_head = item.first_head;
          unit.prompt_len = info.prompt_len;
          unit.decode_steps = steps;
          for (int h = item.first_head; h < item.first_head + item.heads; ++h) {
            const std::span<const Matrix> queries =
                data.queries.empty() ? std::span<const Matrix>()
                                     : std::span<const Matrix>(data.queries).subspan(static_cast<std::size_t>(h * g),
                                                                                     static_cast<std::size_t>(g));
            unit.heads.push_back(HeadInput{data.keys[static_cast<std::size_t>(h)],
                                           data.values[static_cast<std::size_t>(h)], queries});
          }
          std::unique_ptr<LayerCacheState> state = make_layer_state(*jobs[item.job], ctx, item.first_head, item.heads);
          std::vector<BlockResult> blocks = replay_unit(*state, unit, eval_steps, opts.attention);
          for (int h = 0; h < item.heads; ++h)
            result.blocks[li * static_cast<std::size_t>(heads) + static_cast<std::size_t>(item.first_head + h)] =
                std::move(blocks[static_cast<std::size_t>(h)]);
        } catch (const std::exception& e) {
          errors[static_cast<std::size_t>(i)] = e.what();
        }
        seconds[static_cast<std::size_t>(i)] +=
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      }
      if (progress) progress->advance(item.heads);
    }
  }
  // Merge in item order: the first failing item names a job's error.
  for (int i = 0; i < num_items; ++i) {
    JobResult& r = results[static_cast<std::size_t>(items[static_cast<std::size_t>(i)].job)];
    r.compute_seconds += seconds[static_cast<std::size_t>(i)];
    if (r.ok() && !errors[static_cast<std::size_t>(i)].empty()) r.error = errors[static_cast<std::size_t>(i)];
  }
  for (JobResult& r : results)
    if (!r.ok()) r.blocks.clear();
  return results;
}

}  // namespace kvlab
