#include "kvlab/replay/replay_block.hpp"

#include <cmath>

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
StepPoint measure(const CacheState& state, const BlockInput& in, int decode_step, bool attention,
                  Matrix& q, Matrix& ref_logits, Matrix& hat_logits) {
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

BlockResult replay_block(const Compressor& compressor, const BlockContext& ctx, const BlockInput& in,
                         const std::vector<int>& eval_steps, bool attention) {
  std::unique_ptr<CacheState> state = compressor.new_state(ctx);
  const int p = in.prompt_len;
  state->prefill(in.keys.topRows(p), in.values.topRows(p), query_rows(in.queries, 0, p));
  KVLAB_ASSERT(state->size() == p);

  BlockResult r;
  r.layer = ctx.layer;
  r.kv_head = ctx.kv_head;
  r.head_dim = ctx.head_dim;
  r.keys_reconstructible = state->keys_reconstructible();
  Matrix q, ref_logits, hat_logits;
  std::size_t next_eval = 0;
  for (int step = 0; step <= in.decode_steps; ++step) {
    if (step > 0) {
      const int pos = p + step - 1;
      state->append(in.keys.row(pos), in.values.row(pos), query_rows(in.queries, pos, 1));
      KVLAB_ASSERT(state->size() == pos + 1);
    }
    if (next_eval < eval_steps.size() && eval_steps[next_eval] == step) {
      r.steps.push_back(measure(*state, in, step, attention, q, ref_logits, hat_logits));
      r.attn += r.steps.back().attn;
      r.attn_evals += r.steps.back().heads;
      ++next_eval;
    }
  }
  const StepPoint& last = r.steps.back();
  r.tokens = last.tokens;
  r.keys = last.keys;
  r.values = last.values;
  r.bits = state->bits();
  return r;
}

}  // namespace kvlab
