#include "kvlab/replay/replay_block.hpp"

#include <algorithm>
#include <chrono>
#include <exception>

#include "kvlab/compressors/layer_state.hpp"
#include "kvlab/core/error.hpp"

namespace kvlab {

std::vector<int> evaluation_steps(int decode_steps, int eval_every) {
  std::vector<int> steps{0};
  for (int s = 1; s <= decode_steps; ++s)
    if ((eval_every > 0 && s % eval_every == 0) || s == decode_steps) steps.push_back(s);
  return steps;
}

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

QueryGroup query_rows(std::span<const Matrix> queries, int start, int count) {
  QueryGroup q;
  q.reserve(queries.size());
  for (const Matrix& m : queries) q.emplace_back(m.middleRows(start, count));
  return q;
}

// The states of one replay_units call and what they have produced so far.
class Lockstep {
 public:
  Lockstep(std::span<LayerCacheState* const> states, std::size_t heads)
      : states_(states), heads_(heads), results_(states.size()), live_(states.size(), 1),
        meters_(states.size() * heads) {}

  std::size_t size() const { return states_.size(); }
  std::size_t live() const { return static_cast<std::size_t>(std::count(live_.begin(), live_.end(), 1)); }
  LayerCacheState& state(std::size_t k) { return *states_[k]; }
  BlockMeter& meter(std::size_t k, std::size_t h) { return meters_[k * heads_ + h]; }
  UnitResult& result(std::size_t k) { return results_[k]; }

  // Runs fn() for live state k, timed; a throw stops that state alone.
  template <class Fn>
  void run(std::size_t k, Fn&& fn) {
    if (!live_[k]) return;
    const auto t0 = Clock::now();
    try {
      fn();
    } catch (const std::exception& e) {
      results_[k].error = e.what();
      live_[k] = 0;
    }
    results_[k].seconds += seconds_since(t0);
  }
  // Work shared by the live states (the reference), split evenly among them.
  void share(double seconds) {
    const std::size_t n = live();
    for (std::size_t k = 0; k < size(); ++k)
      if (live_[k]) results_[k].seconds += seconds / static_cast<double>(n);
  }

  std::vector<UnitResult> finish() {
    for (std::size_t k = 0; k < size(); ++k)
      if (!live_[k]) results_[k].blocks.clear();
    return std::move(results_);
  }

 private:
  std::span<LayerCacheState* const> states_;
  std::size_t heads_;
  std::vector<UnitResult> results_;
  std::vector<char> live_;
  std::vector<BlockMeter> meters_;
};

// Evaluated steps per chunk: up to 32, fewer when the logits and
// probabilities kept for a chunk (the reference's and each state's, 12 bytes
// per position each) would pass ~128 MB. A multiple of 16 where it can be: the
// logits kernel takes 16 queries per pass and the weighted sum 8 rows of p, so
// a chunk of 20 would leave lanes idle. Results do not depend on it.
int chunk_steps(const UnitInput& in, const std::vector<int>& eval_steps, std::size_t states) {
  if (in.heads.empty()) return 1;
  const double per_step = static_cast<double>(in.heads.size()) * static_cast<double>(in.heads[0].queries.size()) *
                          static_cast<double>(in.prompt_len + in.decode_steps) * 12.0 *
                          static_cast<double>(1 + states);
  int fit = std::clamp(static_cast<int>(128e6 / std::max(per_step, 1.0)), 1, 32);
  if (fit > 16) fit = fit / 16 * 16;
  return std::min(fit, std::max(1, static_cast<int>(eval_steps.size())));
}

}  // namespace

std::vector<UnitResult> replay_units(std::span<LayerCacheState* const> states, const UnitInput& in,
                                     const std::vector<int>& eval_steps, const UnitSettings& settings) {
  const int p = in.prompt_len;
  const std::size_t n = in.heads.size();
  Lockstep run(states, n);
  {
    std::vector<ConstMatrixRef> keys, values;
    std::vector<QueryGroup> queries;
    for (const HeadInput& h : in.heads) {
      keys.emplace_back(h.keys.topRows(p));
      values.emplace_back(h.values.topRows(p));
      queries.push_back(query_rows(h.queries, 0, p));
    }
    for (std::size_t k = 0; k < run.size(); ++k)
      run.run(k, [&] {
        LayerCacheState& state = run.state(k);
        KVLAB_ASSERT(state.heads() == static_cast<int>(n));
        state.prefill(keys, values, queries);
        std::vector<BlockResult>& blocks = run.result(k).blocks;
        blocks.resize(n);
        for (std::size_t h = 0; h < n; ++h) {
          KVLAB_ASSERT(state.head(static_cast<int>(h)).size() == p);
          blocks[h].layer = in.layer;
          blocks[h].kv_head = in.first_head + static_cast<int>(h);
          blocks[h].head_dim = static_cast<int>(in.heads[h].keys.cols());
          blocks[h].keys_reconstructible = state.head(static_cast<int>(h)).keys_reconstructible();
        }
      });
  }

  // The recorded attention of the next `chunk` evaluated steps, per head.
  const bool attention = settings.attention && !in.heads.empty() && !in.heads.front().queries.empty();
  const int chunk = settings.incremental ? chunk_steps(in, eval_steps, states.size()) : 1;
  std::vector<ReferenceChunk> references(attention ? n : 0);
  std::vector<int> positions;
  std::vector<ConstRowRef> keys, values;
  std::vector<QueryGroup> queries(n);
  std::size_t next_eval = 0;
  for (int step = 0; step <= in.decode_steps && run.live() > 0; ++step) {
    if (step > 0) {
      const int pos = p + step - 1;
      keys.clear();
      values.clear();
      for (std::size_t h = 0; h < n; ++h) {
        keys.emplace_back(in.heads[h].keys.row(pos));
        values.emplace_back(in.heads[h].values.row(pos));
        queries[h] = query_rows(in.heads[h].queries, pos, 1);
      }
      for (std::size_t k = 0; k < run.size(); ++k) run.run(k, [&] { run.state(k).append(keys, values, queries); });
    }
    if (next_eval >= eval_steps.size() || eval_steps[next_eval] != step) continue;
    const int eval = static_cast<int>(next_eval++);
    StepReference ref;
    if (attention) {
      ref.chunk_id = eval / chunk;
      ref.step = eval % chunk;
      if (ref.step == 0) {
        const auto t0 = Clock::now();
        positions.clear();
        for (int e = eval; e < std::min(eval + chunk, static_cast<int>(eval_steps.size())); ++e)
          positions.push_back(p + eval_steps[static_cast<std::size_t>(e)] - 1);
        for (std::size_t h = 0; h < n; ++h) references[h].compute(in.heads[h], positions, in.attention);
        run.share(seconds_since(t0));
      }
    }
    for (std::size_t h = 0; h < n; ++h) {
      if (attention) ref.chunk = &references[h];
      for (std::size_t k = 0; k < run.size(); ++k)
        run.run(k, [&] {
          const CacheReader& head = run.state(k).head(static_cast<int>(h));
          KVLAB_ASSERT(head.size() == p + step);
          BlockResult& r = run.result(k).blocks[h];
          r.steps.push_back(run.meter(k, h).measure(head, in.heads[h], step, ref, settings.incremental));
        });
    }
    const bool chunk_ends = ref.step == chunk - 1 || next_eval == eval_steps.size();
    if (attention && chunk_ends)
      for (std::size_t h = 0; h < n; ++h)
        for (std::size_t k = 0; k < run.size(); ++k)
          run.run(k, [&] {
            std::vector<StepPoint>& steps = run.result(k).blocks[h].steps;
            const std::size_t count = static_cast<std::size_t>(references[h].steps());
            run.meter(k, h).finish_chunk(run.state(k).head(static_cast<int>(h)), references[h],
                                         std::span<StepPoint>(steps).last(count));
          });
  }
  for (std::size_t k = 0; k < run.size(); ++k)
    run.run(k, [&] {
      for (std::size_t h = 0; h < n; ++h) {
        BlockResult& r = run.result(k).blocks[h];
        const StepPoint& last = r.steps.back();
        for (const StepPoint& sp : r.steps) {
          r.attn += sp.attn;
          r.attn_evals += sp.heads;
        }
        r.tokens = last.tokens;
        r.keys = last.keys;
        r.values = last.values;
        r.bits = run.state(k).head(static_cast<int>(h)).bits();
      }
    });
  return run.finish();
}

std::vector<BlockResult> replay_unit(LayerCacheState& state, const UnitInput& in, const std::vector<int>& eval_steps,
                                     bool attention) {
  LayerCacheState* one[] = {&state};
  std::vector<UnitResult> r = replay_units(one, in, eval_steps, UnitSettings{attention, true});
  if (!r.front().error.empty()) throw Error(r.front().error);
  return std::move(r.front().blocks);
}

BlockResult replay_block(const Compressor& compressor, const BlockContext& ctx, const BlockInput& in,
                         const std::vector<int>& eval_steps, bool attention) {
  BlockContext c = ctx;
  c.num_kv_heads = std::max(c.num_kv_heads, c.kv_head + 1);
  std::unique_ptr<LayerCacheState> state = make_layer_state(compressor, c, c.kv_head, 1);
  UnitInput unit;
  unit.heads.push_back(HeadInput{in.keys, in.values, in.queries});
  unit.layer = ctx.layer;
  unit.first_head = ctx.kv_head;
  unit.prompt_len = in.prompt_len;
  unit.decode_steps = in.decode_steps;
  unit.attention = ctx.attention;
  return std::move(replay_unit(*state, unit, eval_steps, attention).front());
}

}  // namespace kvlab
