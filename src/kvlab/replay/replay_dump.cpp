#include "kvlab/replay/replay_dump.hpp"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <exception>
#include <future>

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
  const bool any_rope = info.rope || std::any_of(info.layer_attention.begin(), info.layer_attention.end(),
                                                  [](const auto& la) { return !la.rope_inv_freq.empty(); });
  if (compressor.needs_rope() && !any_rope)
    fail("{}: compressor '{}' undoes RoPE, but the dump records no rope_theta/rope_style (nor /rope_inv_freq)",
         info.path, compressor.spec());
  if (opts.attention && !info.has_queries)
    fail("{}: attention metrics need recorded queries, but the dump has none (disable attention metrics)",
         info.path);
}

namespace {

// A work item: kv heads [first_head, first_head + heads) of one layer for a
// group of jobs replayed in lockstep (sharing the recorded attention) — one
// head for block-scoped compressors, the whole layer for layer-scoped ones.
struct WorkItem {
  int first_head = 0, heads = 1;
  std::vector<int> jobs;
};

// Splits `jobs` into `groups` consecutive groups of near-equal size.
std::vector<std::vector<int>> split(const std::vector<int>& jobs, int groups) {
  std::vector<std::vector<int>> out(static_cast<std::size_t>(groups));
  const std::size_t n = jobs.size();
  for (std::size_t i = 0; i < n; ++i) out[i * static_cast<std::size_t>(groups) / n].push_back(jobs[i]);
  return out;
}

// Items for one layer: jobs sharing a head run together, in as many groups as
// keep every thread busy (about four items per thread). Results do not depend
// on the grouping: a job's numbers come from its own state and the recorded
// reference, whoever computes it.
std::vector<WorkItem> make_items(const std::vector<int>& block_jobs, const std::vector<int>& layer_jobs, int heads,
                                 int threads) {
  std::vector<WorkItem> items;
  if (!layer_jobs.empty()) {
    const int groups = std::min(static_cast<int>(layer_jobs.size()), threads);
    for (auto& group : split(layer_jobs, groups)) items.push_back({0, heads, std::move(group)});
  }
  if (!block_jobs.empty()) {
    const int wanted = (4 * threads + heads - 1) / heads;
    const int groups = std::clamp(wanted, 1, static_cast<int>(block_jobs.size()));
    const std::vector<std::vector<int>> split_jobs = split(block_jobs, groups);
    for (int h = 0; h < heads; ++h)
      for (const auto& group : split_jobs) items.push_back({h, 1, group});
  }
  return items;
}

// Layer data for replay_dump: with more than one thread the next layer is read
// on a helper thread while the current one replays (HDF5 is still used by one
// thread at a time: the replay itself never touches the file). At most two
// layers are held.
class LayerFeed {
 public:
  LayerFeed(const DumpReader& reader, const std::vector<int>& layers, bool with_queries, int tokens, int threads)
      : reader_(reader), layers_(layers), with_queries_(with_queries), tokens_(tokens), threads_(threads) {}
  ~LayerFeed() {
    if (next_.valid()) next_.wait();  // never leave the reader thread running
  }

  // Layer layers[i]; requested in order.
  LayerData take(std::size_t i) {
    LayerData data = next_.valid() ? next_.get() : reader_.read_layer(layers_[i], with_queries_, tokens_, threads_);
    if (threads_ > 1 && i + 1 < layers_.size())
      next_ = std::async(std::launch::async, [this, layer = layers_[i + 1]] {
        return reader_.read_layer(layer, with_queries_, tokens_, 1);
      });
    return data;
  }

 private:
  const DumpReader& reader_;
  const std::vector<int>& layers_;
  bool with_queries_;
  int tokens_;
  int threads_;
  std::future<LayerData> next_;
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
  const int threads = opts.threads > 0 ? opts.threads : omp_get_max_threads();

  std::vector<JobResult> results(static_cast<std::size_t>(num_jobs));
  std::vector<int> block_jobs, layer_jobs;
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
    (jobs[j]->scope() == Compressor::Scope::Layer ? layer_jobs : block_jobs).push_back(j);
  }
  const std::vector<WorkItem> items = make_items(block_jobs, layer_jobs, heads, threads);

  const int num_items = static_cast<int>(items.size());
  // errors[i][k]: job items[i].jobs[k] failed in item i (it is skipped there from then on).
  std::vector<std::vector<std::string>> errors(static_cast<std::size_t>(num_items));
  std::vector<std::vector<double>> seconds(static_cast<std::size_t>(num_items));
  for (int i = 0; i < num_items; ++i) {
    errors[static_cast<std::size_t>(i)].resize(items[static_cast<std::size_t>(i)].jobs.size());
    seconds[static_cast<std::size_t>(i)].resize(items[static_cast<std::size_t>(i)].jobs.size(), 0.0);
  }
  const UnitSettings settings{opts.attention, opts.incremental};
  LayerFeed feed(reader, layers, need_queries, tokens, threads);
  for (std::size_t li = 0; li < layers.size(); ++li) {
    const int layer = layers[li];
    const LayerData data = feed.take(li);

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
      ctx.rope = info.rope_of(layer);
      ctx.attention = info.attention(layer);
      try {
        ctx.calibration = jobs[j]->calibrate(LayerView{data.keys, data.values, data.queries}, ctx);
      } catch (const Error& e) {
        results[static_cast<std::size_t>(j)].error = e.what();
      }
    }

#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
    for (int i = 0; i < num_items; ++i) {
      const WorkItem& item = items[static_cast<std::size_t>(i)];
      std::vector<std::string>& item_errors = errors[static_cast<std::size_t>(i)];
      // The jobs of the item still running, and their states.
      std::vector<std::size_t> slots;
      std::vector<std::unique_ptr<LayerCacheState>> owned;
      for (std::size_t k = 0; k < item.jobs.size(); ++k) {
        const int j = item.jobs[k];
        if (!results[static_cast<std::size_t>(j)].ok() || !item_errors[k].empty()) continue;
        const auto t0 = std::chrono::steady_clock::now();
        try {
          owned.push_back(make_layer_state(*jobs[j], base[static_cast<std::size_t>(j)], item.first_head, item.heads));
          slots.push_back(k);
        } catch (const std::exception& e) {
          item_errors[k] = e.what();
        }
        seconds[static_cast<std::size_t>(i)][k] +=
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      }
      if (!owned.empty()) {
        UnitInput unit;
        unit.layer = layer;
        unit.first_head = item.first_head;
        unit.prompt_len = info.prompt_len;
        unit.decode_steps = steps;
        unit.attention = info.attention(layer);
        for (int h = item.first_head; h < item.first_head + item.heads; ++h) {
          const std::span<const Matrix> queries =
              data.queries.empty() ? std::span<const Matrix>()
                                   : std::span<const Matrix>(data.queries).subspan(static_cast<std::size_t>(h * g),
                                                                                   static_cast<std::size_t>(g));
          unit.heads.push_back(HeadInput{data.keys[static_cast<std::size_t>(h)],
                                         data.values[static_cast<std::size_t>(h)], queries});
        }
        std::vector<LayerCacheState*> states;
        for (auto& s : owned) states.push_back(s.get());
        std::vector<UnitResult> out = replay_units(states, unit, eval_steps, settings);
        for (std::size_t s = 0; s < slots.size(); ++s) {
          const std::size_t k = slots[s];
          UnitResult& r = out[s];
          seconds[static_cast<std::size_t>(i)][k] += r.seconds;
          if (!r.error.empty()) {
            item_errors[k] = std::move(r.error);
            continue;
          }
          JobResult& result = results[static_cast<std::size_t>(item.jobs[k])];
          for (int h = 0; h < item.heads; ++h)
            result.blocks[li * static_cast<std::size_t>(heads) + static_cast<std::size_t>(item.first_head + h)] =
                std::move(r.blocks[static_cast<std::size_t>(h)]);
        }
      }
      if (progress) progress->advance(static_cast<long long>(item.heads) * static_cast<long long>(item.jobs.size()));
    }
  }
  // Merge in item order: the first failing item names a job's error.
  for (int i = 0; i < num_items; ++i) {
    const WorkItem& item = items[static_cast<std::size_t>(i)];
    for (std::size_t k = 0; k < item.jobs.size(); ++k) {
      JobResult& r = results[static_cast<std::size_t>(item.jobs[k])];
      r.compute_seconds += seconds[static_cast<std::size_t>(i)][k];
      const std::string& e = errors[static_cast<std::size_t>(i)][k];
      if (r.ok() && !e.empty()) r.error = e;
    }
  }
  for (JobResult& r : results)
    if (!r.ok()) r.blocks.clear();
  return results;
}

}  // namespace kvlab
