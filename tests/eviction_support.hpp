#pragma once
// Helpers of the eviction-method tests (test_eviction_*.cpp): random blocks,
// kept sets, the documented bit formula, and a plain driver of the
// scored-dropper budget/mode semantics that reference scorers plug into.
#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include "kvlab/compressors/registry.hpp"
#include "kvlab/core/rng.hpp"
#include "test_support.hpp"

namespace kvlab::test {

// A block's recorded tensors: keys, values and the group's queries, [T × d].
struct EvBlock {
  Matrix k, v;
  std::vector<Matrix> q;
};

inline EvBlock random_ev_block(int t, int d, int heads, std::uint64_t seed, double key_scale = 1.0) {
  Rng rng(seed);
  EvBlock b{random_matrix(t, d, rng, key_scale), random_matrix(t, d, rng), {}};
  for (int h = 0; h < heads; ++h) b.q.push_back(random_matrix(t, d, rng));
  return b;
}

inline BlockContext ev_context(int d, int prompt, int total, int group = 1, std::uint64_t seed = 11) {
  BlockContext c = block_context(d, total, prompt, seed);
  c.group_size = group;
  c.rope = RopeInfo{10000.0, RopeStyle::Neox};
  return c;
}

inline QueryGroup ev_rows(const EvBlock& b, int start, int count) {
  QueryGroup g;
  for (const Matrix& m : b.q) g.emplace_back(m.middleRows(start, count));
  return g;
}

inline std::set<int> present_set(const CacheState& s) {
  std::set<int> out;
  const CacheView v = s.view();
  for (int i = 0; i < v.tokens(); ++i)
    if (v.is_present(i)) out.insert(i);
  return out;
}

// The documented dropper bits (FP16 store): 32·d per kept token + the kept-set
// index, 0 when nothing was evicted, else min(t, 32·kept).
inline std::uint64_t ev_dropper_bits(int t, int kept, int d) {
  const std::uint64_t index = kept == t ? 0 : std::min<std::uint64_t>(t, 32ULL * kept);
  return 32ULL * d * kept + index;
}

inline std::unique_ptr<CacheState> ev_state(const std::string& spec, const BlockContext& ctx) {
  return Registry::global().build(spec)->new_state(ctx);
}

// The scored-dropper semantics written from docs/methods/eviction.md: keep the
// B highest prompt scores (ties: lower position); with decode = true the newest
// R prompt positions are kept first, and after each token, while kept > B, the
// lowest decode score among present positions older than the newest R goes
// (ties: the higher position).
struct RefScoredDropper {
  int budget = 1, recent = 1;
  bool decode = false;
  std::function<std::vector<double>(int p)> prompt_scores;
  std::function<std::vector<double>(int t, const std::vector<char>& present)> decode_scores;
  std::vector<char> present;

  void prefill(int p, int total) {
    present.assign(static_cast<std::size_t>(total), 0);
    for (int i = 0; i < p; ++i) present[i] = 1;
    if (p <= budget) return;
    std::vector<double> s = prompt_scores(p);
    if (decode)
      for (int i = p - recent; i < p; ++i) s[i] = INFINITY;
    std::vector<int> order(p);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return s[a] > s[b]; });
    for (int r = budget; r < p; ++r) present[order[r]] = 0;
  }
  void append(int t) {
    present[t] = 1;
    if (!decode) return;
    int kept = 0;
    for (int i = 0; i <= t; ++i) kept += present[i];
    if (kept <= budget) return;
    const std::vector<double> s = decode_scores(t, present);
    int victim = -1;
    for (int i = 0; i < t + 1 - recent; ++i)
      if (present[i] && (victim < 0 || s[i] <= s[victim])) victim = i;
    present[victim] = 0;
  }
  std::set<int> kept(int t) const {
    std::set<int> out;
    for (int i = 0; i < t; ++i)
      if (present[i]) out.insert(i);
    return out;
  }
};

// Feeds `spec` and the reference the same block and requires identical kept
// sets after prefill and after every decode step, and the documented bits.
inline void require_matches_reference(const std::string& spec, const BlockContext& ctx, const EvBlock& b,
                                      RefScoredDropper ref) {
  const int p = ctx.prompt_len, total = ctx.max_tokens, d = ctx.head_dim;
  auto s = ev_state(spec, ctx);
  s->prefill(b.k.topRows(p), b.v.topRows(p), ev_rows(b, 0, p));
  ref.prefill(p, total);
  INFO("spec " << spec << " after prefill");
  REQUIRE(present_set(*s) == ref.kept(p));
  CHECK(s->bits().total() == ev_dropper_bits(p, static_cast<int>(ref.kept(p).size()), d));
  for (int t = p; t < total; ++t) {
    s->append(b.k.row(t), b.v.row(t), ev_rows(b, t, 1));
    ref.append(t);
    INFO("step " << t);
    REQUIRE(present_set(*s) == ref.kept(t + 1));
    REQUIRE(s->bits().total() == ev_dropper_bits(t + 1, static_cast<int>(ref.kept(t + 1).size()), d));
  }
}

// Σ over the group's heads of softmax_j(q·k_j/√d), j present and ≤ pos, for
// the query row `pos` of every head.
inline std::vector<double> ref_attention(const EvBlock& b, int pos, const std::vector<char>& present) {
  const int d = static_cast<int>(b.k.cols());
  std::vector<double> s(pos + 1, 0.0);
  for (const Matrix& q : b.q) {
    std::vector<double> e(pos + 1, 0.0);
    double mx = -1e300, sum = 0;
    for (int j = 0; j <= pos; ++j)
      if (present[j]) mx = std::max(mx, double(q.row(pos).dot(b.k.row(j))) / std::sqrt(double(d)));
    for (int j = 0; j <= pos; ++j)
      if (present[j]) sum += e[j] = std::exp(double(q.row(pos).dot(b.k.row(j))) / std::sqrt(double(d)) - mx);
    for (int j = 0; j <= pos; ++j) s[j] += e[j] / sum;
  }
  return s;
}

}  // namespace kvlab::test
