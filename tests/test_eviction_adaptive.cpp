// Head-adaptive budgets: the allocation functions (head_budget.hpp) on their
// own, and adakv/criticalkv's layer-scoped states against a plain reference
// written from docs/methods/eviction.md.
#include <catch2/catch.hpp>

#include "eviction_support.hpp"
#include "kvlab/compressors/head_budget.hpp"
#include "kvlab/compressors/layer_state.hpp"
#include "kvlab/compressors/scored_dropper.hpp"
#include "kvlab/core/error.hpp"

using namespace kvlab;
using namespace kvlab::test;
using Catch::Matchers::Contains;

namespace {

HeadScores random_scores(int heads, int n, std::uint64_t seed, double spread_per_head = 0.0) {
  Rng rng(seed);
  HeadScores s(heads, std::vector<double>(n));
  for (int h = 0; h < heads; ++h)
    for (int i = 0; i < n; ++i) s[h][i] = rng.uniform() + spread_per_head * h;
  return s;
}

// Ada-KV written directly: safeguard per head by a stable sort, then one global
// stable sort of the rest by (score desc; head, position asc).
std::vector<std::set<int>> ref_adakv(const HeadScores& s, int budget, double alpha) {
  const int heads = static_cast<int>(s.size()), n = static_cast<int>(s[0].size());
  std::vector<std::set<int>> kept(heads);
  if (n <= budget) {
    for (auto& k : kept)
      for (int i = 0; i < n; ++i) k.insert(i);
    return kept;
  }
  const int f = static_cast<int>(std::floor(alpha * budget + 1e-9));
  for (int h = 0; h < heads; ++h) {
    std::vector<int> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return s[h][a] > s[h][b]; });
    kept[h].insert(order.begin(), order.begin() + f);
  }
  std::vector<std::pair<int, int>> rest;
  for (int h = 0; h < heads; ++h)
    for (int i = 0; i < n; ++i)
      if (!kept[h].count(i)) rest.emplace_back(h, i);
  std::stable_sort(rest.begin(), rest.end(), [&](auto a, auto b) { return s[a.first][a.second] > s[b.first][b.second]; });
  for (int k = 0; k < heads * (budget - f); ++k) kept[rest[k].first].insert(rest[k].second);
  return kept;
}

std::vector<std::set<int>> as_sets(const std::vector<std::vector<int>>& v) {
  std::vector<std::set<int>> out;
  for (const auto& x : v) out.emplace_back(x.begin(), x.end());
  return out;
}

}  // namespace

TEST_CASE("adakv_select: exact layer budget, safeguard, and the best scores across heads", "[eviction][adakv]") {
  for (const double alpha : {0.0, 0.2, 1.0}) {
    for (const double spread : {0.0, 0.5}) {
      const HeadScores s = random_scores(4, 50, 3, spread);
      const auto got = as_sets(adakv_select(s, 10, alpha));
      REQUIRE(got == ref_adakv(s, 10, alpha));
      std::size_t total = 0;
      for (const auto& k : got) {
        total += k.size();
        CHECK(k.size() >= static_cast<std::size_t>(std::floor(alpha * 10 + 1e-9)));
      }
      CHECK(total == 40);
      if (alpha == 1.0)
        for (const auto& k : got) CHECK(k.size() == 10);  // alpha = 1: every head gets B
    }
  }
  // A head whose every score beats the others' takes everything the safeguard leaves.
  HeadScores s = random_scores(3, 40, 5);
  for (double& x : s[1]) x += 10;
  const auto got = adakv_select(s, 8, 0.25);
  CHECK(got[0].size() == 2);
  CHECK(got[1].size() == 20);
  CHECK(got[2].size() == 2);
  // Within budget: everything; +inf positions are always among the kept.
  CHECK(adakv_select(random_scores(2, 5, 1), 5, 0.2) == std::vector<std::vector<int>>{{0, 1, 2, 3, 4}, {0, 1, 2, 3, 4}});
  HeadScores with_inf = random_scores(2, 30, 2);
  with_inf[0][17] = kAlwaysKeep;
  CHECK(as_sets(adakv_select(with_inf, 3, 0.0))[0].count(17));
}

TEST_CASE("criticalkv_select: stage 1 by score, stage 2 by score times the value norm", "[eviction][criticalkv]") {
  // Scores fall with position; norms rise: stage 1 takes the first k1, stage 2 the largest products.
  const int n = 10;
  HeadScores s(1, std::vector<double>(n)), norm(1, std::vector<double>(n));
  for (int i = 0; i < n; ++i) {
    s[0][i] = 1.0 - 0.05 * i;
    norm[0][i] = 1.0 + i;
  }
  // b = 4, first_stage 0.5 → k1 = 2: {0, 1}; then the 2 largest (s + ε)·norm among 2..9: 9 (0.55·10), 8 (0.6·9).
  CHECK(as_sets(criticalkv_select(s, norm, {4}, {0}, 0.5, 0.0))[0] == std::set<int>{0, 1, 8, 9});
  // A floor above ⌊b·r⌋ widens stage 1 (CriticalAdaKV's safeguard is kept first).
  CHECK(as_sets(criticalkv_select(s, norm, {4}, {3}, 0.5, 0.0))[0] == std::set<int>{0, 1, 2, 9});
  // first_stage = 1 is the base's top b.
  CHECK(as_sets(criticalkv_select(s, norm, {4}, {0}, 1.0, 0.0))[0] == std::set<int>{0, 1, 2, 3});
  CHECK(critical_score(kAlwaysKeep, 0.0, 1e-4) == kAlwaysKeep);
  CHECK(critical_score(0.5, 2.0, 0.25) == 1.5);
}

TEST_CASE("lowest_across_heads respects presence, the window end and the floor", "[eviction][adakv]") {
  const HeadScores s{{0.5, 0.1, 0.3, 0.9}, {0.2, 0.1, 0.05, 0.7}};
  const std::uint8_t absent1[] = {1, 1, 0, 1};
  HeadPosition v = lowest_across_heads(s, {nullptr, absent1}, {4, 4}, {4, 3}, 0);
  CHECK((v.head == 1 && v.position == 1));  // 0.05 is absent; 0.1 ties with head 0: the higher head
  v = lowest_across_heads(s, {nullptr, nullptr}, {4, 2}, {4, 4}, 0);
  CHECK((v.head == 1 && v.position == 1));  // head 1 may only evict below position 2
  v = lowest_across_heads(s, {nullptr, nullptr}, {4, 4}, {4, 2}, 2);
  CHECK((v.head == 0 && v.position == 1));  // head 1 is at its floor
  CHECK(lowest_across_heads(s, {nullptr, nullptr}, {0, 0}, {4, 4}, 0).head == -1);
}

namespace {

// SnapKV's pooled votes (max pool, kernel k) of the window's last w queries,
// window positions +inf, for one head's block over positions [0, n).
std::vector<double> ref_snapkv_scores(const EvBlock& b, int n, int w, int kernel, const std::vector<char>& present) {
  std::vector<double> votes(n - w, 0.0);
  for (int r = n - w; r < n; ++r) {
    const std::vector<double> a = ref_attention(b, r, present);
    for (int j = 0; j < n - w; ++j) votes[j] += a[j];
  }
  std::vector<double> s(n, INFINITY);
  for (int i = 0; i < n - w; ++i) {
    double m = -1e300;
    for (int j = std::max(0, i - kernel / 2); j <= std::min(n - w - 1, i + kernel / 2); ++j) m = std::max(m, votes[j]);
    s[i] = m;
  }
  return s;
}

struct LayerFeed {
  std::vector<EvBlock> heads;
  int p, total, d;

  void prefill(LayerCacheState& s) const {
    std::vector<ConstMatrixRef> k, v;
    std::vector<QueryGroup> q;
    for (const EvBlock& b : heads) {
      k.emplace_back(b.k.topRows(p));
      v.emplace_back(b.v.topRows(p));
      q.push_back(ev_rows(b, 0, p));
    }
    s.prefill(k, v, q);
  }
  void append(LayerCacheState& s, int t) const {
    std::vector<ConstRowRef> k, v;
    std::vector<QueryGroup> q;
    for (const EvBlock& b : heads) {
      k.emplace_back(b.k.row(t));
      v.emplace_back(b.v.row(t));
      q.push_back(ev_rows(b, t, 1));
    }
    s.append(k, v, q);
  }
};

std::vector<std::set<int>> layer_kept(const LayerCacheState& s) {
  std::vector<std::set<int>> out;
  for (int h = 0; h < s.heads(); ++h) {
    std::set<int> k;
    const CacheView v = s.head(h).view();
    for (int i = 0; i < v.tokens(); ++i)
      if (v.is_present(i)) k.insert(i);
    out.push_back(k);
  }
  return out;
}

void check_layer_bits(const LayerCacheState& s, int t, int d) {
  for (int h = 0; h < s.heads(); ++h) {
    const CacheView v = s.head(h).view();
    int kept = 0;
    for (int i = 0; i < v.tokens(); ++i) kept += v.is_present(i) ? 1 : 0;
    REQUIRE(s.head(h).bits().total() == ev_dropper_bits(t, kept, d));
  }
}

LayerFeed random_layer(int heads, int p, int total, int d, int group, std::uint64_t seed) {
  LayerFeed f{{}, p, total, d};
  for (int h = 0; h < heads; ++h) {
    f.heads.push_back(random_ev_block(total, d, group, seed + static_cast<std::uint64_t>(h)));
    // Heads differ in how peaked their attention is, so allocations differ.
    for (Matrix& q : f.heads.back().q) q *= float(0.5 + h);
  }
  return f;
}

BlockContext layer_context(const LayerFeed& f, int group) {
  BlockContext c = ev_context(f.d, f.p, f.total, group);
  c.num_kv_heads = static_cast<int>(f.heads.size());
  return c;
}

}  // namespace

TEST_CASE("adakv over snapkv matches the reference prefill; bits add up per head", "[eviction][adakv]") {
  const int heads = 3, p = 70, total = 90, d = 8, g = 2, budget = 14;  // floor(0.2 · 70)
  const LayerFeed f = random_layer(heads, p, total, d, g, 50);
  const auto c = Registry::global().build("adakv:keep=0.2,window=6,kernel=3,alpha=0.25");
  CHECK(c->scope() == Compressor::Scope::Layer);
  auto s = make_layer_state(*c, layer_context(f, g), 0, heads);
  f.prefill(*s);
  HeadScores scores;
  for (const EvBlock& b : f.heads) scores.push_back(ref_snapkv_scores(b, p, 6, 3, std::vector<char>(total, 1)));
  const auto want = ref_adakv(scores, budget, 0.25);
  REQUIRE(layer_kept(*s) == want);
  std::size_t sizes_differ = 0;
  for (const auto& k : want) sizes_differ += k.size() != static_cast<std::size_t>(budget) ? 1 : 0;
  CHECK(sizes_differ > 0);  // the allocation is not uniform on these heads
  check_layer_bits(*s, p, d);
  // mode=prefill keeps every decode token.
  for (int t = p; t < total; ++t) f.append(*s, t);
  for (int h = 0; h < heads; ++h) CHECK(layer_kept(*s)[h].size() == want[h].size() + (total - p));
  check_layer_bits(*s, total, d);
}

TEST_CASE("adakv and criticalkv in decode mode keep the layer budget, matching a reference", "[eviction][adakv]") {
  const int heads = 2, p = 60, total = 100, d = 8, g = 1, budget = 15, recent = 3;  // keep 0.25, recent 0.2
  const LayerFeed f = random_layer(heads, p, total, d, g, 70);
  for (const bool critical : {false, true}) {
    const std::string spec = std::string(critical ? "criticalkv" : "adakv") +
                             ":base=tova,keep=0.25,mode=decode,recent=0.2,alpha=0.2" +
                             (critical ? ",first_stage=0.5,epsilon=0.001" : "");
    INFO(spec);
    auto s = make_layer_state(*Registry::global().build(spec), layer_context(f, g), 0, heads);
    // Reference: tova scores (last query; the newest R prompt positions +inf), Ada-KV / CriticalAdaKV selection.
    std::vector<std::vector<char>> present(heads, std::vector<char>(total, 0));
    HeadScores sc, norms;
    for (const EvBlock& b : f.heads) {
      std::vector<double> x = ref_attention(b, p - 1, std::vector<char>(total, 1));
      for (int i = p - recent; i < p; ++i) x[i] = INFINITY;
      sc.push_back(x);
      std::vector<double> n(p);
      for (int i = 0; i < p; ++i) n[i] = b.v.row(i).cast<double>().cwiseAbs().sum();
      norms.push_back(n);
    }
    std::vector<std::set<int>> kept = ref_adakv(sc, budget, 0.2);
    if (critical) {
      std::vector<int> budgets;
      for (const auto& k : kept) budgets.push_back(static_cast<int>(k.size()));
      kept = as_sets(criticalkv_select(sc, norms, budgets, {3, 3}, 0.5, 0.001));
    }
    for (int h = 0; h < heads; ++h)
      for (int i : kept[h]) present[h][i] = 1;
    f.prefill(*s);
    REQUIRE(layer_kept(*s) == kept);
    for (int t = p; t < total; ++t) {
      f.append(*s, t);
      int sum = 0;
      for (int h = 0; h < heads; ++h) present[h][t] = 1, sum += int(std::count(present[h].begin(), present[h].end(), 1));
      // The step's scores, computed once before its evictions.
      HeadScores step(heads);
      for (int h = 0; h < heads; ++h) step[h] = ref_attention(f.heads[h], t, present[h]);
      while (sum > heads * budget) {
        // Lowest score over heads above the safeguard, older than the newest R; ties: higher head, then position.
        int vh = -1, vi = -1;
        double low = 0;
        for (int h = 0; h < heads; ++h) {
          if (std::count(present[h].begin(), present[h].end(), 1) <= 3) continue;
          const std::vector<double>& a = step[h];
          for (int i = 0; i < t + 1 - recent; ++i) {
            if (!present[h][i]) continue;
            const double x = critical ? (a[i] + 0.001) * f.heads[h].v.row(i).cast<double>().cwiseAbs().sum() : a[i];
            if (vh < 0 || x <= low) vh = h, vi = i, low = x;
          }
        }
        present[vh][vi] = 0;
        --sum;
      }
      std::vector<std::set<int>> want(heads);
      for (int h = 0; h < heads; ++h)
        for (int i = 0; i <= t; ++i)
          if (present[h][i]) want[h].insert(i);
      INFO("step " << t);
      REQUIRE(layer_kept(*s) == want);
      check_layer_bits(*s, t + 1, d);
    }
  }
}

TEST_CASE("head-adaptive wrappers: parameters, scope and errors", "[eviction][adakv]") {
  const Registry& r = Registry::global();
  CHECK(r.canonical("adakv").rfind("adakv:base=snapkv,", 0) == 0);
  CHECK_THROWS_WITH(r.build("adakv:base=tova,window=8"), Contains("no effect"));
  CHECK_THROWS_WITH(r.build("criticalkv:adaptive=false,alpha=0.3"), Contains("no effect"));
  CHECK_THROWS_WITH(r.build("adakv:kernel=4"), Contains("odd"));
  CHECK_THROWS_WITH(r.build("adakv:base=keydiff,block=8"), Contains("block"));
  CHECK(r.build("adakv:base=knorm")->needs_queries() == false);
  CHECK(r.build("adakv:base=expected-attention")->needs_rope());
  CHECK_THROWS_WITH(r.build("adakv")->new_state(ev_context(8, 10, 10)), Contains("one state per layer"));
}
