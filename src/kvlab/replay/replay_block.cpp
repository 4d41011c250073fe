#include "kvlab/replay/replay_block.hpp"

#include <algorithm>
#include <cmath>

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

QueryGroup query_rows(std::span<const Matrix> queries, int start, int count) {
  QueryGroup q;
  q.reserve(queries.size());
  for (const Matrix& m : queries) q.emplace_back(m.middleRows(start, count));
  return q;
}

// Measures the cache at query position `position` (cache = positions [0, position]).
StepPoint measure(const CacheReader& state, const HeadInput& in, int decode_step, bool attention, Matrix& q,
                  Matrix& ref_logits, Matrix& hat_logits) {
  const CacheView view = state.view();
  const int t = view.tokens();
  const int position = t - 1;
  StepPoint s;
  s.decode_step = decode_step;
  s.position = position;
  s.tokens = t;
  s.bits = state.bits().total();
  if (state.keys_reconstructible())
    s.keys = tensor_error(in.keys.topRows(t), view.keys);
  else
    s.keys = undefined_tensor_error();
  s.values = tensor_error(in.values.topRows(t), view.values);

  if (attention && !in.queries.empty()) {
    const int g = static_cast<int>(in.queries.size());
    const int d = static_cast<int>(in.keys.cols());
    q.resize(g, d);
    for (int j = 0; j < g; ++j) q.row(j) = in.queries[j].row(position);
    ref_logits.resize(g, t);
    ref_logits.noalias() = q * in.keys.topRows(t).transpose();
    hat_logits.resize(g, t);
    state.key_logits(q, hat_logits);
    const double scale = 1.0 / std::sqrt(static_cast<double>(d));
    const std::uint8_t* present = view.present ? view.present->data() : nullptr;
    for (int j = 0; j < g; ++j)
      s.attn += compare_attention(ref_logits.row(j).data(), hat_logits.row(j).data(), in.values.topRows(t),
                                  view.values, present, scale);
    s.heads = g;
  }
  return s;
}

}  // namespace

std::vector<BlockResult> replay_unit(LayerCacheState& state, const UnitInput& in, const std::vector<int>& eval_steps,
                                     bool attention) {
  const int p = in.prompt_len;
  const std::size_t n = in.heads.size();
  KVLAB_ASSERT(state.heads() == static_cast<int>(n));
  {
    std::vector<ConstMatrixRef> keys, values;
    std::vector<QueryGroup> queries;
    for (const HeadInput& h : in.heads) {
      keys.emplace_back(h.keys.topRows(p));
      values.emplace_back(h.values.topRows(p));
      queries.push_back(query_rows(h.queries, 0, p));
    }
    state.prefill(keys, values, queries);
  }

  std::vector<BlockResult> results(n);
  for (std::size_t h = 0; h < n; ++h) {
    KVLAB_ASSERT(state.head(static_cast<int>(h)).size() == p);
    results[h].layer = in.layer;
    results[h].kv_head = in.first_head + static_cast<int>(h);
    results[h].head_dim = static_cast<int>(in.heads[h].keys.cols());
    results[h].keys_reconstructible = state.head(static_cast<int>(h)).keys_reconstructible();
  }
  Matrix q, ref_logits, hat_logits;
  std::vector<ConstRowRef> keys, values;
  std::vector<QueryGroup> queries(n);
  std::size_t next_eval = 0;
  for (int step = 0; step <= in.decode_steps; ++step) {
    if (step > 0) {
      const int pos = p + step - 1;
      keys.clear();
      values.clear();
      for (std::size_t h = 0; h < n; ++h) {
        keys.emplace_back(in.heads[h].keys.row(pos));
        values.emplace_back(in.heads[h].values.row(pos));
        queries[h] = query_rows(in.heads[h].queries, pos, 1);
      }
      state.append(keys, values, queries);
    }
    if (next_eval < eval_steps.size() && eval_steps[next_eval] == step) {
      for (std::size_t h = 0; h < n; ++h) {
        const CacheReader& head = state.head(static_cast<int>(h));
        KVLAB_ASSERT(head.size() == p + step);
        BlockResult& r = results[h];
        r.steps.push_back(measure(head, in.heads[h], step, attention, q, ref_logits, hat_logits));
        r.attn += r.steps.back().attn;
        r.attn_evals += r.steps.back().heads;
      }
      ++next_eval;
    }
  }
  for (std::size_t h = 0; h < n; ++h) {
    BlockResult& r = results[h];
    const StepPoint& last = r.steps.back();
    r.tokens = last.tokens;
    r.keys = last.keys;
    r.values = last.values;
    r.bits = state.head(static_cast<int>(h)).bits();
  }
  return results;
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
  return std::move(replay_unit(*state, unit, eval_steps, attention).front());
}

}  // namespace kvlab
