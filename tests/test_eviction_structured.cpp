// Droppers with structure beyond one score per token: lagkv (partitions scored
// against the next), chunkkv (whole chunks) and think (key channels), each
// against a plain reference written from docs/methods/eviction.md.
#include <catch2/catch.hpp>

#include "eviction_support.hpp"
#include "kvlab/core/error.hpp"

using namespace kvlab;
using namespace kvlab::test;
using Catch::Matchers::Contains;

namespace {

// LagKV's (key + value)/2 score of `part` against `ref` (present rows only).
std::vector<double> ref_lag(const EvBlock& b, const std::vector<int>& part, const std::vector<int>& ref) {
  std::vector<double> out(part.size(), 0.0);
  for (const Matrix* x : {&b.k, &b.v}) {
    const int d = static_cast<int>(x->cols());
    std::vector<double> sd(part.size());
    for (std::size_t k = 0; k < part.size(); ++k) {
      std::vector<double> row(d);
      double mean = 0;
      for (int c = 0; c < d; ++c) {
        double mn = 1e300, mx = -1e300;
        for (int r : ref) mn = std::min<double>(mn, (*x)(r, c)), mx = std::max<double>(mx, (*x)(r, c));
        row[c] = mx == mn ? 0 : ((*x)(part[k], c) - mn) / (mx - mn);
        mean += row[c] / d;
      }
      double var = 0;
      for (double v : row) var += (v - mean) * (v - mean);
      sd[k] = std::sqrt(var / (d - 1));
    }
    double sum = 0;
    for (double v : sd) sum += std::exp(v);
    for (std::size_t k = 0; k < part.size(); ++k) out[k] += std::exp(sd[k]) / sum / 2;
  }
  return out;
}

// Top `count` of `cand` by score (ties: lower position), as a set.
std::set<int> ref_top(std::vector<int> cand, const std::vector<double>& score_of_pos, int count) {
  std::stable_sort(cand.begin(), cand.end(), [&](int a, int b) { return score_of_pos[a] > score_of_pos[b]; });
  cand.resize(std::min<std::size_t>(cand.size(), static_cast<std::size_t>(count)));
  return {cand.begin(), cand.end()};
}

struct RefLagkv {
  const EvBlock& b;
  int budget, lag, sinks;
  bool decode;
  std::vector<char> present;
  int unscored = 0, quota = 1;

  std::vector<int> members(int start) const {
    std::vector<int> r;
    for (int i = start; i < start + lag; ++i)
      if (present[i]) r.push_back(i);
    return r;
  }
  void prefill(int p, int total) {
    present.assign(total, 0);
    for (int i = 0; i < p; ++i) present[i] = 1;
    quota = std::clamp(budget * lag / p, 1, lag);
    const int s = std::min(sinks, p), parts = p >= s + 2 * lag ? (p - s) / lag : 0;
    unscored = parts > 0 ? s + (parts - 1) * lag : s;
    if (p <= budget) return;
    std::vector<double> prio(p);
    for (int i = 0; i < s; ++i) prio[i] = 3;
    for (int i = unscored; i < p; ++i) prio[i] = 1 + double(i - unscored) / (p - unscored);
    for (int k = 0; k + 1 < parts; ++k) {
      const std::vector<int> part = members(s + k * lag), ref = members(s + (k + 1) * lag);
      const std::vector<double> sc = ref_lag(b, part, ref);
      for (std::size_t a = 0; a < part.size(); ++a) {
        int below = 0;  // rank: tokens with a lower score, or equal score and a higher position
        for (std::size_t c = 0; c < part.size(); ++c)
          if (sc[c] < sc[a] || (sc[c] == sc[a] && part[c] > part[a])) ++below;
        prio[part[a]] = double(below) / lag;
      }
    }
    std::vector<int> all(p);
    std::iota(all.begin(), all.end(), 0);
    const std::set<int> keep = ref_top(all, prio, budget);
    for (int i = 0; i < p; ++i) present[i] = keep.count(i) ? 1 : 0;
  }
  void append(int t) {
    present[t] = 1;
    if (!decode) return;
    while (t + 1 - unscored >= 2 * lag) {
      const std::vector<int> part = members(unscored), ref = members(unscored + lag);
      unscored += lag;
      if (int(part.size()) <= quota || ref.empty()) continue;
      const std::vector<double> sc = ref_lag(b, part, ref);
      std::vector<double> by_pos(t + 1, 0.0);
      for (std::size_t a = 0; a < part.size(); ++a) by_pos[part[a]] = sc[a];
      const std::set<int> keep = ref_top(part, by_pos, quota);
      for (int i : part) present[i] = keep.count(i) ? 1 : 0;
    }
  }
  std::set<int> kept(int t) const {
    std::set<int> out;
    for (int i = 0; i < t; ++i)
      if (present[i]) out.insert(i);
    return out;
  }
};

template <class Ref>
void require_same_as(const std::string& spec, const BlockContext& ctx, const EvBlock& b, Ref& ref) {
  const int p = ctx.prompt_len, total = ctx.max_tokens, d = ctx.head_dim;
  auto s = ev_state(spec, ctx);
  s->prefill(b.k.topRows(p), b.v.topRows(p), ev_rows(b, 0, p));
  ref.prefill(p, total);
  INFO(spec);
  REQUIRE(present_set(*s) == ref.kept(p));
  for (int t = p; t < total; ++t) {
    s->append(b.k.row(t), b.v.row(t), ev_rows(b, t, 1));
    ref.append(t);
    INFO("step " << t);
    REQUIRE(present_set(*s) == ref.kept(t + 1));
    REQUIRE(s->bits().total() == ev_dropper_bits(t + 1, static_cast<int>(ref.kept(t + 1).size()), d));
  }
}

}  // namespace

TEST_CASE("lagkv matches a plain reference: partitions, tail, sinks and the decode recursion", "[eviction][lagkv]") {
  const int d = 8, p = 100, total = 190;
  const EvBlock b = random_ev_block(total, d, 1, 41);
  for (const bool decode : {false, true}) {
    for (const int budget : {30, 5}) {  // 5 < sinks + tail: the sinks, then the newest
      RefLagkv ref{b, budget, 16, 4, decode, {}};
      std::string spec = "lagkv:keep_tokens=" + std::to_string(budget) + ",lag=16,sinks=4";
      if (decode) spec += ",mode=decode";
      require_same_as(spec, ev_context(d, p, total), b, ref);
    }
  }
  // A prompt shorter than S + 2L keeps the sinks and the newest tokens.
  auto s = ev_state("lagkv:keep_tokens=10,lag=64,sinks=3", ev_context(d, p, p));
  s->prefill(b.k.topRows(p), b.v.topRows(p), {});
  CHECK(present_set(*s) == std::set<int>{0, 1, 2, 93, 94, 95, 96, 97, 98, 99});
  CHECK_FALSE(Registry::global().build("lagkv")->needs_queries());
}

TEST_CASE("lagkv keeps the same count from every scored partition", "[eviction][lagkv]") {
  const int d = 8, p = 4 + 6 * 20 + 7;  // sinks, six partitions of 20, a remainder of 7
  const EvBlock b = random_ev_block(p, d, 1, 9);
  auto s = ev_state("lagkv:keep_tokens=61,lag=20,sinks=4", ev_context(d, p, p));
  s->prefill(b.k, b.v, {});
  // 4 sinks + the tail (last partition + remainder = 27) + 30 = 6 from each of the 5 scored partitions.
  const std::set<int> kept = present_set(*s);
  REQUIRE(kept.size() == 61);
  for (int k = 0; k < 5; ++k) {
    int n = 0;
    for (int i = 4 + 20 * k; i < 4 + 20 * (k + 1); ++i) n += static_cast<int>(kept.count(i));
    CHECK(n == 6);
  }
  for (int i = 4 + 5 * 20; i < p; ++i) CHECK(kept.count(i));
}

namespace {

struct RefChunkkv {
  const EvBlock& b;
  int budget, chunk, window;
  bool decode;
  std::vector<char> present;

  // Σ_heads Σ_{r ∈ [n − w, n)} softmax over present j ≤ r.
  std::vector<double> votes(int n, int w) const {
    std::vector<double> v(n, 0.0);
    for (int r = n - w; r < n; ++r) {
      const std::vector<double> a = ref_attention(b, r, present);
      for (int j = 0; j <= r; ++j) v[j] += a[j];
    }
    return v;
  }
  double mean(const std::vector<double>& v, int k, int end) const {
    double s = 0;
    int m = 0;
    for (int i = k * chunk; i < std::min((k + 1) * chunk, end); ++i)
      if (present[i]) s += v[i], ++m;
    return s / m;
  }
  void prefill(int p, int total) {
    present.assign(total, 0);
    for (int i = 0; i < p; ++i) present[i] = 1;
    if (p <= budget) return;
    const int w = std::min({window, budget, p}), prefix = p - w;
    const std::vector<double> v = votes(p, w);
    const int chunks = (prefix + chunk - 1) / chunk;
    std::vector<int> ids(chunks);
    std::iota(ids.begin(), ids.end(), 0);
    std::vector<double> score(chunks);
    for (int k = 0; k < chunks; ++k) score[k] = mean(v, k, prefix);
    const std::set<int> keep = ref_top(ids, score, (budget - w) / chunk);
    for (int i = 0; i < prefix; ++i) present[i] = keep.count(i / chunk) ? 1 : 0;
  }
  void append(int t) {
    present[t] = 1;
    if (!decode) return;
    int kept = 0;
    for (int i = 0; i <= t; ++i) kept += present[i];
    if (kept <= budget) return;
    const int n = t + 1, w = std::min({window, budget, n}), first = n - w;
    const std::vector<double> v = votes(n, w);
    int victim = -1;
    double low = 0;
    for (int k = 0; k * chunk < first; ++k) {
      bool any = false;
      for (int i = k * chunk; i < std::min((k + 1) * chunk, first); ++i) any = any || present[i];
      if (!any) continue;
      const double s = mean(v, k, first);
      if (victim < 0 || s <= low) victim = k, low = s;
    }
    if (victim < 0) return;
    for (int i = victim * chunk; i < std::min((victim + 1) * chunk, first); ++i) present[i] = 0;
  }
  std::set<int> kept(int t) const {
    std::set<int> out;
    for (int i = 0; i < t; ++i)
      if (present[i]) out.insert(i);
    return out;
  }
};

}  // namespace

TEST_CASE("chunkkv matches a plain reference in both modes (GQA group of 2)", "[eviction][chunkkv]") {
  const int d = 8, p = 90, total = 150;
  const EvBlock b = random_ev_block(total, d, 2, 23);
  for (const bool decode : {false, true}) {
    for (const auto& [budget, chunk, window] : std::vector<std::tuple<int, int, int>>{{40, 7, 8}, {12, 5, 32}}) {
      RefChunkkv ref{b, budget, chunk, window, decode, {}};
      std::string spec = "chunkkv:keep_tokens=" + std::to_string(budget) + ",chunk=" + std::to_string(chunk) +
                         ",window=" + std::to_string(window);
      if (decode) spec += ",mode=decode";
      require_same_as(spec, ev_context(d, p, total, 2), b, ref);
    }
  }
}

TEST_CASE("chunkkv keeps whole chunks and the window; kept never exceeds B in decode", "[eviction][chunkkv]") {
  const int d = 8, p = 100, total = 160, c = 10, w = 8;
  const EvBlock b = random_ev_block(total, d, 1, 3);
  auto s = ev_state("chunkkv:keep_tokens=40,chunk=10,window=8,mode=decode", ev_context(d, p, total));
  s->prefill(b.k.topRows(p), b.v.topRows(p), ev_rows(b, 0, p));
  const std::set<int> kept = present_set(*s);
  // The window + floor(32/10) = 3 chunks: 38 tokens, or 30 if one is the prefix's short last chunk [90, 92).
  CHECK((kept.size() == 38 || kept.size() == 30));
  for (int i = p - w; i < p; ++i) CHECK(kept.count(i));
  for (int k = 0; k * c < p - w; ++k) {
    int n = 0;
    for (int i = k * c; i < std::min((k + 1) * c, p - w); ++i) n += static_cast<int>(kept.count(i));
    CHECK((n == 0 || n == std::min(c, p - w - k * c)));
  }
  for (int t = p; t < total; ++t) {
    s->append(b.k.row(t), b.v.row(t), ev_rows(b, t, 1));
    REQUIRE(present_set(*s).size() <= 40);
    REQUIRE(present_set(*s).count(t));
  }
  CHECK(Registry::global().build("chunkkv")->needs_queries());
}

TEST_CASE("think prunes the channels a plain reference picks; bits count pruned channels", "[eviction][think]") {
  const int d = 16, p = 60, total = 90, g = 2;
  EvBlock b = random_ev_block(total, d, g, 19);
  for (int c = 0; c < d; ++c) b.k.col(c) *= float(0.2 + 0.1 * ((c * 7) % d));  // distinct channel energies
  for (const bool decode : {false, true}) {
    for (const auto& [prune, window, recent] : std::vector<std::tuple<double, int, int>>{{0.5, 8, 4}, {0.3, 60, 0}}) {
      const int n = static_cast<int>(std::floor(prune * d + 1e-9));
      // Reference channel scores: (Σ_heads Σ_window q_c²)·(Σ_prompt k_c²); prune the n lowest (ties: higher channel).
      std::vector<double> score(d);
      for (int c = 0; c < d; ++c) {
        double qs = 0, ks = 0;
        for (const Matrix& q : b.q)
          for (int r = p - std::min(window, p); r < p; ++r) qs += double(q(r, c)) * q(r, c);
        for (int i = 0; i < p; ++i) ks += double(b.k(i, c)) * b.k(i, c);
        score[c] = qs * ks;
      }
      std::vector<int> order(d);
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](int x, int y) { return score[x] > score[y]; });
      const std::set<int> pruned(order.begin() + (d - n), order.end());
      std::string spec = "think:prune=" + std::to_string(prune) + ",window=" + std::to_string(window) +
                         ",recent=" + std::to_string(recent);
      if (decode) spec += ",mode=decode";
      INFO(spec);
      auto s = ev_state(spec, ev_context(d, p, total, g));
      s->prefill(b.k.topRows(p), b.v.topRows(p), ev_rows(b, 0, p));
      for (int t = p; t <= total; ++t) {
        if (t > p) s->append(b.k.row(t - 1), b.v.row(t - 1), ev_rows(b, t - 1, 1));
        const int pruned_tokens = decode ? std::max(0, t - recent) : std::max(0, p - recent);
        const CacheView v = s->view();
        REQUIRE(v.present == nullptr);
        for (int i = 0; i < t; ++i)
          for (int c = 0; c < d; ++c) {
            const float want = (i < pruned_tokens && pruned.count(c)) ? 0.0f : b.k(i, c);
            REQUIRE(v.keys(i, c) == want);
          }
        REQUIRE(v.values == b.v.topRows(t));
        const BitCount bits = s->bits();
        REQUIRE(bits.fp16_buffer == 16ULL * (2ULL * d * t - std::uint64_t(n) * pruned_tokens));
        REQUIRE(bits.metadata == (pruned_tokens > 0 ? std::uint64_t(d) : 0));
        REQUIRE(bits.total() == bits.fp16_buffer + bits.metadata);
      }
    }
  }
  // prune = 0 is the FP16 cache; window/recent/mode need prune > 0.
  auto none = ev_state("think:prune=0", ev_context(d, p, total, g));
  none->prefill(b.k.topRows(p), b.v.topRows(p), ev_rows(b, 0, p));
  CHECK(none->bits().total() == fp16_baseline_bits(p, d));
  CHECK_THROWS_WITH(Registry::global().build("think:prune=0,recent=4"), Contains("no effect"));
}
