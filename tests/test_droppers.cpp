// Token droppers: H2O, StreamingLLM, SnapKV, PyramidKV and composition with a
// per-token inner quantizer. Bits are checked against the closed forms of
// docs/methods/droppers.md written here from the parameters.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <numeric>
#include <set>

#include "kvlab/compressors/h2o.hpp"
#include "kvlab/compressors/registry.hpp"
#include "kvlab/compressors/token_dropper.hpp"
#include "kvlab/core/error.hpp"
#include "kvlab/core/rng.hpp"
#include "kvlab/attention/scores.hpp"
#include "kvlab/metrics/tensor_error.hpp"
#include "kvlab/quant/group_quantizer.hpp"
#include "test_support.hpp"

using namespace kvlab;
using test::random_matrix;
using Catch::Matchers::Contains;

namespace {

BlockContext context(int d, int prompt, int total, int group = 1, int layer = 0, int layers = 1) {
  BlockContext c = test::block_context(d, total, prompt, 11);
  c.layer = layer;
  c.num_layers = layers;
  c.group_size = group;
  return c;
}

// A block's recorded tensors: keys, values and the group's queries [T × d].
struct Block {
  Matrix k, v;
  std::vector<Matrix> q;
};

Block random_block(int t, int d, int heads, std::uint64_t seed) {
  Rng rng(seed);
  Block b{random_matrix(t, d, rng), random_matrix(t, d, rng), {}};
  for (int h = 0; h < heads; ++h) b.q.push_back(random_matrix(t, d, rng));
  return b;
}

// One query head aligned with `u` (channel 0): keys planted as 8·u become
// heavy hitters. Small random keys, unit-scale values.
RowVector unit_row(int d) {
  RowVector u = RowVector::Zero(d);
  u[0] = 1;
  return u;
}

Block heavy_hitter_block(int total, int d, const RowVector& u) {
  Rng rng(3);
  Block b{random_matrix(total, d, rng, 0.3), random_matrix(total, d, rng), {}};
  Matrix q = random_matrix(total, d, rng, 0.3);
  for (int i = 0; i < total; ++i) q.row(i) += 4.0f * u;
  b.q.push_back(q);
  return b;
}

QueryGroup rows_of(const Block& b, int start, int count) {
  QueryGroup g;
  for (const Matrix& m : b.q) g.emplace_back(m.middleRows(start, count));
  return g;
}

std::set<int> kept_set(const CacheState& s) {
  std::set<int> out;
  const CacheView v = s.view();
  for (int i = 0; i < v.tokens(); ++i)
    if (v.is_present(i)) out.insert(i);
  return out;
}

// Index bits of the documented rule: 0 when nothing was evicted, else min(t, 32·kept).
std::uint64_t index_bits(int t, int kept) {
  return kept == t ? 0 : std::min<std::uint64_t>(t, 32ULL * kept);
}
std::uint64_t fp16_dropper_bits(int t, int kept, int d, bool index = true) {
  return 32ULL * d * kept + (index ? index_bits(t, kept) : 0);
}

std::unique_ptr<CacheState> state_for(const std::string& spec, const BlockContext& ctx) {
  return Registry::global().build(spec)->new_state(ctx);
}

// A plain H2O written from the definition, for comparison.
struct RefH2o {
  int heavy, recent;
  std::vector<double> score;
  std::vector<char> present;
  double scale;

  void add(const Block& b, int pos, int upto) {
    for (const Matrix& q : b.q) {
      std::vector<double> e(upto + 1, 0.0);
      double sum = 0;
      for (int j = 0; j <= upto; ++j) {
        if (!present[j]) continue;
        e[j] = std::exp(scale * double(q.row(pos).dot(b.k.row(j))));
        sum += e[j];
      }
      for (int j = 0; j <= upto; ++j) score[j] += e[j] / sum;
    }
  }
  void prefill(const Block& b, int p) {
    score.assign(b.k.rows(), 0.0);
    present.assign(b.k.rows(), 0);
    for (int i = 0; i < p; ++i) present[i] = 1;
    for (int t = 0; t < p; ++t) add(b, t, t);
    if (p <= heavy + recent) return;
    std::vector<int> older(p - recent);
    std::iota(older.begin(), older.end(), 0);
    std::stable_sort(older.begin(), older.end(), [&](int a, int c) { return score[a] > score[c]; });
    for (std::size_t i = heavy; i < older.size(); ++i) present[older[i]] = 0;
  }
  void append(const Block& b, int t) {
    present[t] = 1;
    add(b, t, t);
    int kept = 0;
    for (int i = 0; i <= t; ++i) kept += present[i];
    if (kept <= heavy + recent) return;
    int victim = -1;
    for (int i = 0; i <= t - recent; ++i)
      if (present[i] && (victim < 0 || score[i] <= score[victim])) victim = i;
    present[victim] = 0;
  }
  std::set<int> kept(int t) const {
    std::set<int> s;
    for (int i = 0; i < t; ++i)
      if (present[i]) s.insert(i);
    return s;
  }
};

}  // namespace

TEST_CASE("h2o keeps planted heavy hitters and the exact recent window; evictions are permanent", "[h2o]") {
  const int d = 16, p = 100, total = 160;
  const RowVector u = unit_row(d);
  Block b = heavy_hitter_block(total, d, u);
  std::set<int> planted;
  for (int i = 2; i < 60; i += 6) {
    b.k.row(i) = 8.0f * u;
    planted.insert(i);
  }
  REQUIRE(planted.size() == 10);

  auto s = state_for("h2o:heavy=0.1,recent=0.1", context(d, p, total));
  s->prefill(b.k.topRows(p), b.v.topRows(p), rows_of(b, 0, p));
  std::set<int> evicted;
  for (int t = p; t <= total; ++t) {
    if (t > p) s->append(b.k.row(t - 1), b.v.row(t - 1), rows_of(b, t - 1, 1));
    const std::set<int> kept = kept_set(*s);
    REQUIRE(kept.size() == 20);
    for (int i : planted) REQUIRE(kept.count(i));
    for (int i = t - 10; i < t; ++i) REQUIRE(kept.count(i));  // exact recent window
    for (int i : evicted) REQUIRE(!kept.count(i));             // never returns
    for (int i = 0; i < t; ++i)
      if (!kept.count(i)) evicted.insert(i);
    CHECK(s->bits().total() == fp16_dropper_bits(t, 20, d));
    CHECK(s->bits().index == std::min<std::uint64_t>(t, 32 * 20));
  }
  // Evicted rows read as zero.
  const CacheView v = s->view();
  for (int i : evicted) REQUIRE(v.keys.row(i).squaredNorm() == 0.0f);
}

TEST_CASE("h2o matches a plain reference implementation step by step (GQA group of 2)", "[h2o]") {
  const int d = 8, p = 64, total = 100;
  const Block b = random_block(total, d, 2, 21);
  auto s = state_for("h2o:heavy_tokens=7,recent_tokens=5", context(d, p, total, 2));
  RefH2o ref{7, 5, {}, {}, 1.0 / std::sqrt(double(d))};
  s->prefill(b.k.topRows(p), b.v.topRows(p), rows_of(b, 0, p));
  ref.prefill(b, p);
  REQUIRE(kept_set(*s) == ref.kept(p));
  for (int t = p; t < total; ++t) {
    s->append(b.k.row(t), b.v.row(t), rows_of(b, t, 1));
    ref.append(b, t);
    REQUIRE(kept_set(*s) == ref.kept(t + 1));
    REQUIRE(kept_set(*s).size() == 12);
  }
}

TEST_CASE("h2o sums scores over the GQA group's heads", "[h2o]") {
  // Head 0 attends to set A (keys along u), head 1 to set B (keys along w).
  const int d = 8, p = 80;
  Rng rng(5);
  Block b{random_matrix(p, d, rng, 0.2), random_matrix(p, d, rng), {}};
  RowVector u = RowVector::Zero(d), w = RowVector::Zero(d);
  u[0] = 1;
  w[1] = 1;
  const std::set<int> a{3, 10, 20, 30}, bset{5, 15, 25, 35};
  for (int i : a) b.k.row(i) = 8.0f * u;
  for (int i : bset) b.k.row(i) = 8.0f * w;
  Matrix q0 = random_matrix(p, d, rng, 0.2), q1 = random_matrix(p, d, rng, 0.2);
  for (int i = 0; i < p; ++i) {
    q0.row(i) += 4.0f * u;
    q1.row(i) += 4.0f * w;
  }
  b.q = {q0, q1};
  auto both = state_for("h2o:heavy_tokens=8,recent_tokens=4", context(d, p, p, 2));
  both->prefill(b.k, b.v, rows_of(b, 0, p));
  const std::set<int> kept = kept_set(*both);
  for (int i : a) CHECK(kept.count(i));
  for (int i : bset) CHECK(kept.count(i));
  // Head 0 alone does not keep all of B.
  Block only0 = b;
  only0.q = {q0};
  auto one = state_for("h2o:heavy_tokens=8,recent_tokens=4", context(d, p, p, 1));
  one->prefill(b.k, b.v, rows_of(only0, 0, p));
  const std::set<int> kept0 = kept_set(*one);
  int b_kept = 0;
  for (int i : bset) b_kept += static_cast<int>(kept0.count(i));
  CHECK(b_kept < 4);
}

TEST_CASE("h2o keeps everything while under budget, and needs queries", "[h2o]") {
  const int d = 4, p = 10;
  const Block b = random_block(p, d, 1, 2);
  auto s = state_for("h2o:heavy_tokens=8,recent_tokens=4", context(d, p, p + 3));
  s->prefill(b.k, b.v, rows_of(b, 0, p));
  CHECK(kept_set(*s).size() == 10);
  CHECK(s->bits().total() == 32ULL * d * p);  // no index: nothing evicted
  CHECK(s->view().present == nullptr);
  auto s2 = state_for("h2o", context(d, p, p));
  CHECK_THROWS_WITH(s2->prefill(b.k, b.v, QueryGroup{}), Contains("needs queries"));
  CHECK(Registry::global().build("h2o")->needs_queries());
}

TEST_CASE("streaming keeps exactly the sinks and the window", "[streaming]") {
  const int d = 8, p = 50, total = 70;
  const Block b = random_block(total, d, 1, 9);
  for (const auto& [spec, window] : std::vector<std::pair<std::string, int>>{
           {"streaming:sinks=4,window=0.2", 6}, {"streaming:sinks=2,window_tokens=9", 9}, {"streaming-20pct", 6}}) {
    const int sinks = spec.find("sinks=2") != std::string::npos ? 2 : 4;
    auto s = state_for(spec, context(d, p, total));
    CHECK_FALSE(Registry::global().build(spec)->needs_queries());
    s->prefill(b.k.topRows(p), b.v.topRows(p), QueryGroup{});
    for (int t = p; t <= total; ++t) {
      if (t > p) s->append(b.k.row(t - 1), b.v.row(t - 1), QueryGroup{});
      std::set<int> expect;
      for (int i = 0; i < sinks; ++i) expect.insert(i);
      for (int i = t - window; i < t; ++i) expect.insert(i);
      REQUIRE(kept_set(*s) == expect);
      REQUIRE(s->bits().total() == fp16_dropper_bits(t, sinks + window, d, /*index=*/false));
      REQUIRE(s->bits().index == 0);
      // Kept rows are the recorded tokens, exactly.
      for (int i : expect) REQUIRE(s->view().keys.row(i) == b.k.row(i));
    }
  }
}

namespace {
// Plain SnapKV prefill selection, written from the definition.
std::set<int> ref_snapkv(const Block& b, int p, int w, int kernel, bool max_pool, int capacity) {
  std::set<int> keep;
  if (p <= capacity) {
    for (int i = 0; i < p; ++i) keep.insert(i);
    return keep;
  }
  const int prefix = p - w, d = static_cast<int>(b.k.cols());
  std::vector<double> votes(prefix, 0.0);
  for (const Matrix& q : b.q)
    for (int r = prefix; r < p; ++r) {
      std::vector<double> e(r + 1);
      double sum = 0;
      for (int j = 0; j <= r; ++j) sum += e[j] = std::exp(double(q.row(r).dot(b.k.row(j))) / std::sqrt(double(d)));
      for (int j = 0; j < prefix; ++j) votes[j] += e[j] / sum;
    }
  std::vector<double> pooled(prefix);
  for (int i = 0; i < prefix; ++i) {
    double acc = max_pool ? -1e300 : 0;
    for (int j = i - kernel / 2; j <= i + kernel / 2; ++j)
      if (j >= 0 && j < prefix) acc = max_pool ? std::max(acc, votes[j]) : acc + votes[j];
    pooled[i] = max_pool ? acc : acc / kernel;
  }
  std::vector<int> order(prefix);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int c) { return pooled[a] > pooled[c]; });
  for (int i = 0; i < capacity - w; ++i) keep.insert(order[i]);
  for (int i = prefix; i < p; ++i) keep.insert(i);
  return keep;
}
}  // namespace

TEST_CASE("snapkv keeps the window plus the pooled top prefix; decode tokens all kept", "[snapkv]") {
  const int d = 16, p = 120, total = 140;
  const Block b = random_block(total, d, 2, 33);
  for (const bool max_pool : {true, false}) {
    const std::string spec = std::string("snapkv:window=8,kernel=5,capacity=40,pool=") + (max_pool ? "max" : "avg");
    auto s = state_for(spec, context(d, p, total, 2));
    s->prefill(b.k.topRows(p), b.v.topRows(p), rows_of(b, 0, p));
    const std::set<int> expect = ref_snapkv(b, p, 8, 5, max_pool, 40);
    REQUIRE(kept_set(*s) == expect);
    REQUIRE(s->bits().total() == fp16_dropper_bits(p, 40, d));
    for (int t = p; t < total; ++t) {
      s->append(b.k.row(t), b.v.row(t), rows_of(b, t, 1));
      std::set<int> e = expect;
      for (int i = p; i <= t; ++i) e.insert(i);
      REQUIRE(kept_set(*s) == e);
      REQUIRE(s->bits().total() == fp16_dropper_bits(t + 1, 40 + t + 1 - p, d));
    }
  }
  // capacity_ratio: C = floor(0.25 · 120) = 30.
  auto r = state_for("snapkv:window=8,kernel=5,capacity_ratio=0.25", context(d, p, total, 2));
  r->prefill(b.k.topRows(p), b.v.topRows(p), rows_of(b, 0, p));
  CHECK(kept_set(*r) == ref_snapkv(b, p, 8, 5, true, 30));
  // A short prompt is kept whole.
  auto whole = state_for("snapkv:window=8,capacity=200", context(d, p, total, 2));
  whole->prefill(b.k.topRows(p), b.v.topRows(p), rows_of(b, 0, p));
  CHECK(kept_set(*whole).size() == static_cast<std::size_t>(p));
  CHECK_THROWS_WITH(Registry::global().build("snapkv:kernel=4"), Contains("odd"));
  CHECK_THROWS_WITH(Registry::global().build("snapkv:window=32,capacity=32"), Contains("exceed"));
}

TEST_CASE("snapkv pooling", "[snapkv]") {
  const std::vector<double> v{1, 5, 2, 0, 0, 3};
  CHECK(snapkv_pool(v, 3, true) == std::vector<double>{5, 5, 5, 2, 3, 3});
  const std::vector<double> a = snapkv_pool(v, 3, false);
  CHECK(a[0] == Approx(6.0 / 3));
  CHECK(a[2] == Approx(7.0 / 3));
  CHECK(a[5] == Approx(3.0 / 3));
  CHECK(snapkv_pool(v, 1, true) == v);
}

TEST_CASE("pyramidkv budgets sum to the flat total and decrease with layer", "[pyramidkv]") {
  for (int flat : {0, 1, 7, 992, 1000}) {
    for (int layers : {1, 2, 5, 32}) {
      for (double beta : {1.0, 2.0, 20.0}) {
        const std::vector<int> b = pyramid_budgets(flat, layers, beta);
        REQUIRE(std::accumulate(b.begin(), b.end(), 0LL) == static_cast<long long>(flat) * layers);
        for (int l = 1; l < layers; ++l) REQUIRE(b[l] <= b[l - 1]);
        if (layers > 1 && beta > 1 && flat >= 100) REQUIRE(b.front() > b.back());
        for (int x : b) REQUIRE(x >= 0);
      }
    }
  }
  // The closed form for 992 over 32 layers, beta = 20: min = 49.6, max = 1934.4.
  const std::vector<int> b = pyramid_budgets(992, 32, 20);
  CHECK(b.back() == std::floor(992 / 20.0) + 0);  // 49 (+ remainder only in the lowest layers)
  CHECK(b.front() >= 1934);
}

TEST_CASE("pyramidkv over snapkv and h2o: per-layer kept counts follow the schedule", "[pyramidkv]") {
  const int d = 8, p = 200, layers = 4;
  const Block b = random_block(p, d, 1, 44);
  const std::vector<int> snap = pyramid_budgets(40 - 8, layers, 2.0);
  const std::vector<int> heavy = pyramid_budgets(20, layers, 2.0);  // heavy = 0.1 · 200
  long long total_snap = 0;
  for (int l = 0; l < layers; ++l) {
    auto s = state_for("pyramidkv:base=snapkv,beta=2,window=8,capacity=40", context(d, p, p, 1, l, layers));
    s->prefill(b.k, b.v, rows_of(b, 0, p));
    const auto kept = static_cast<int>(kept_set(*s).size());
    CHECK(kept == snap[l] + 8);
    CHECK(s->bits().total() == fp16_dropper_bits(p, kept, d));
    total_snap += kept;
    auto h = state_for("pyramidkv:base=h2o,beta=2,heavy=0.1,recent=0.1", context(d, p, p, 1, l, layers));
    h->prefill(b.k, b.v, rows_of(b, 0, p));
    CHECK(static_cast<int>(kept_set(*h).size()) == heavy[l] + 20);
  }
  CHECK(total_snap == 40LL * layers);
  CHECK(Registry::global().canonical("pyramidkv-1024").rfind("pyramidkv:", 0) == 0);
}

TEST_CASE("composition: h2o over a per-token quantizer", "[compose]") {
  const int d = 64, p = 100, total = 120, group = 32;
  const RowVector u = unit_row(d);
  Block b = heavy_hitter_block(total, d, u);
  for (int i = 2; i < 60; i += 6) b.k.row(i) = 8.0f * u;

  const std::string inner = "uniform:bits=4,group=32,axis=token";
  auto composed = state_for("h2o:heavy=0.1,recent=0.1,inner=(" + inner + ")", context(d, p, total));
  auto dropper = state_for("h2o:heavy=0.1,recent=0.1", context(d, p, total));
  auto quant = state_for(inner, context(d, p, total));
  for (CacheState* s : {composed.get(), dropper.get(), quant.get()})
    s->prefill(b.k.topRows(p), b.v.topRows(p), rows_of(b, 0, p));
  for (int t = p; t < total; ++t)
    for (CacheState* s : {composed.get(), dropper.get(), quant.get()})
      s->append(b.k.row(t), b.v.row(t), rows_of(b, t, 1));

  // Bits: inner per-token bits of the kept tokens (K and V) + index bits.
  const std::uint64_t per_tensor = 4ULL * d + 32ULL * ((d + group - 1) / group);
  const BitCount bc = composed->bits();
  CHECK(bc.total() == 20 * 2 * per_tensor + index_bits(total, 20));
  CHECK(bc.codes == 20ULL * 2 * 4 * d);
  CHECK(bc.fp16_buffer == 0);
  // Kept rows hold the inner quantizer's reconstruction of the recorded token.
  const CacheView v = composed->view();
  const QuantConfig cfg{4, QuantAxis::PerToken, group};
  for (int i : kept_set(*composed)) {
    Matrix x = b.v.row(i), out(1, d);
    fake_quantize(x, cfg, out);
    REQUIRE(v.values.row(i) == out.row(0));
  }
  CHECK(kept_set(*composed) == kept_set(*dropper));
  // Error sits above both pure methods'.
  const auto err = [&](const CacheState& s) { return tensor_error(b.v, s.view().values).rel(); };
  CHECK(err(*composed) >= err(*dropper));
  CHECK(err(*composed) >= err(*quant));
  CHECK(err(*composed) < err(*dropper) * 1.1);
  // The preset resolves and composes the same way.
  CHECK(Registry::global().build("h2o-20pct-int4")->needs_queries());
}

TEST_CASE("composition: every dropper takes a per-token inner; per-channel inners are rejected", "[compose]") {
  const int d = 32, p = 60;
  const Block b = random_block(p, d, 1, 8);
  for (const std::string m : {"h2o", "streaming", "snapkv:window=4,capacity=20", "pyramidkv:window=4,capacity=20"}) {
    const std::string sep = m.find(':') == std::string::npos ? ":" : ",";
    auto s = state_for(m + sep + "inner=(uniform:bits=2,group=0,axis=token)", context(d, p, p));
    s->prefill(b.k, b.v, rows_of(b, 0, p));
    const auto kept = static_cast<int>(kept_set(*s).size());
    const bool index = m != "streaming";
    CHECK(s->bits().total() == kept * 2ULL * (2ULL * d + 32) + (index ? index_bits(p, kept) : 0));
    CHECK(Registry::global().build(m + sep + "inner=(fp16)")->new_state(context(d, p, p)) != nullptr);
    CHECK_THROWS_WITH(Registry::global().build(m + sep + "inner=(uniform:axis=channel)"), Contains("per-token"));
    CHECK_THROWS_WITH(Registry::global().build(m + sep + "inner=(kivi)"), Contains("per-token"));
  }
}

TEST_CASE("dropper presets resolve", "[droppers]") {
  for (const char* p : {"h2o-20pct", "streaming-20pct", "snapkv-1024", "pyramidkv-1024", "h2o-20pct-int4"})
    CHECK(Registry::global().build(p) != nullptr);
}
