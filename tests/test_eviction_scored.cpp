// Score-based droppers with simple scores (tova, knorm, keydiff, random) and
// the shared budget/mode semantics, each against a plain reference written
// from docs/methods/eviction.md.
#include <catch2/catch.hpp>
#include <map>

#include "eviction_support.hpp"
#include "kvlab/compressors/scored_dropper.hpp"
#include "kvlab/core/error.hpp"

using namespace kvlab;
using namespace kvlab::test;
using Catch::Matchers::Contains;

namespace {

std::vector<double> ref_knorm(const EvBlock& b, int n, const std::vector<char>* present) {
  std::vector<double> s(n, 0.0);
  for (int i = 0; i < n; ++i)
    if (!present || (*present)[i]) s[i] = -std::sqrt(double(b.k.row(i).cast<double>().squaredNorm()));
  return s;
}

// −cos(k_i, mean of k_j/‖k_j‖ over `set`), for i in set.
std::vector<double> ref_keydiff(const EvBlock& b, const std::vector<int>& set, int n) {
  const int d = static_cast<int>(b.k.cols());
  std::vector<double> anchor(d, 0.0), s(n, 0.0);
  for (int j : set) {
    const double norm = b.k.row(j).cast<double>().norm();
    for (int c = 0; c < d; ++c) anchor[c] += b.k(j, c) / norm / double(set.size());
  }
  double an = 0;
  for (double a : anchor) an += a * a;
  an = std::sqrt(an);
  for (int i : set) {
    double dot = 0;
    for (int c = 0; c < d; ++c) dot += b.k(i, c) * anchor[c];
    s[i] = -dot / (b.k.row(i).cast<double>().norm() * an);
  }
  return s;
}

std::vector<int> present_list(const std::vector<char>& present, int upto) {
  std::vector<int> out;
  for (int i = 0; i <= upto; ++i)
    if (present[i]) out.push_back(i);
  return out;
}

}  // namespace

TEST_CASE("tova matches a plain reference in both modes (GQA group of 2)", "[eviction][tova]") {
  const int d = 16, p = 80, total = 130;
  const EvBlock b = random_ev_block(total, d, 2, 7);
  for (const bool decode : {false, true}) {
    for (const double recent : {0.0, 0.25}) {
      if (!decode && recent > 0) continue;
      RefScoredDropper ref;
      ref.budget = 20;  // floor(0.25 · 80)
      ref.recent = decode ? std::max(1, int(std::floor(recent * 20 + 1e-9))) : 1;
      ref.decode = decode;
      ref.prompt_scores = [&](int n) {
        std::vector<double> s = ref_attention(b, n - 1, std::vector<char>(n, 1));
        s[n - 1] = INFINITY;
        return s;
      };
      ref.decode_scores = [&](int t, const std::vector<char>& pr) { return ref_attention(b, t, pr); };
      std::string spec = "tova:keep=0.25";
      if (decode) spec += ",mode=decode,recent=" + std::to_string(recent);
      require_matches_reference(spec, ev_context(d, p, total, 2), b, ref);
    }
  }
}

TEST_CASE("tova keeps the tokens the current query attends to, not the accumulated ones", "[eviction][tova]") {
  // Keys along u are attended by early queries only, keys along w by late
  // queries: tova (current query) keeps the w keys where h2o (accumulated)
  // would keep the u keys.
  const int d = 8, p = 60;
  Rng rng(4);
  EvBlock b{random_matrix(p, d, rng, 0.1), random_matrix(p, d, rng), {}};
  RowVector u = RowVector::Zero(d), w = RowVector::Zero(d);
  u[0] = 1;
  w[1] = 1;
  for (int i : {5, 10, 15}) b.k.row(i) = 6.0f * u;
  for (int i : {20, 25, 30}) b.k.row(i) = 6.0f * w;
  Matrix q = random_matrix(p, d, rng, 0.1);
  for (int i = 0; i < p; ++i) q.row(i) += (i < 40 ? 3.0f : 0.0f) * u + (i >= 59 ? 3.0f : 0.0f) * w;
  b.q = {q};
  auto s = ev_state("tova:keep_tokens=4", ev_context(d, p, p));
  s->prefill(b.k, b.v, ev_rows(b, 0, p));
  CHECK(present_set(*s) == std::set<int>{20, 25, 30, 59});
}

TEST_CASE("knorm keeps the lowest-norm keys in both modes", "[eviction][knorm]") {
  const int d = 12, p = 64, total = 100;
  EvBlock b = random_ev_block(total, d, 1, 3);
  for (int i = 0; i < total; ++i) b.k.row(i) *= float(0.5 + (i * 37 % 11) / 5.0);  // spread the norms
  for (const bool decode : {false, true}) {
    RefScoredDropper ref;
    ref.budget = 19;  // floor(0.3 · 64)
    ref.decode = decode;
    ref.prompt_scores = [&](int n) { return ref_knorm(b, n, nullptr); };
    ref.decode_scores = [&](int t, const std::vector<char>& pr) { return ref_knorm(b, t + 1, &pr); };
    require_matches_reference(decode ? "knorm:keep=0.3,mode=decode" : "knorm:keep=0.3", ev_context(d, p, total), b,
                              ref);
  }
  // Queries are not needed.
  CHECK_FALSE(Registry::global().build("knorm")->needs_queries());
  auto s = ev_state("knorm:keep=0.3", ev_context(d, p, total));
  s->prefill(b.k.topRows(p), b.v.topRows(p), QueryGroup{});
  CHECK(present_set(*s).size() == 19);
}

TEST_CASE("keydiff matches a plain reference: one-shot, block-wise and decode", "[eviction][keydiff]") {
  const int d = 10, p = 90, total = 120, budget = 27;  // floor(0.3 · 90)
  EvBlock b = random_ev_block(total, d, 1, 12);
  for (int i = 0; i < total; ++i) b.k.row(i).array() += 0.8f;  // a shared direction makes the anchor matter
  for (const int block : {0, 16, 128}) {
    for (const bool decode : {false, true}) {
      RefScoredDropper ref;
      ref.budget = budget;
      ref.decode = decode;
      ref.prompt_scores = [&](int n) {
        std::vector<int> all(n);
        std::iota(all.begin(), all.end(), 0);
        return ref_keydiff(b, all, n);
      };
      ref.decode_scores = [&](int t, const std::vector<char>& pr) {
        return ref_keydiff(b, present_list(pr, t), t + 1);
      };
      if (block > 0) {
        // Block-wise prefill: the first B tokens, then kept + each block cut back
        // to B (mode=decode: the newest prompt token is protected in every cut).
        ref.prompt_scores = [&, block, decode](int n) {
          std::vector<int> kept(budget);
          std::iota(kept.begin(), kept.end(), 0);
          for (int start = budget; start < n; start += block) {
            std::vector<int> set = kept;
            for (int i = start; i < std::min(start + block, n); ++i) set.push_back(i);
            std::vector<double> s = ref_keydiff(b, set, n);
            if (decode) s[n - 1] = INFINITY;
            std::stable_sort(set.begin(), set.end(), [&](int x, int y) { return s[x] > s[y]; });
            set.resize(budget);
            std::sort(set.begin(), set.end());
            kept = set;
          }
          std::vector<double> rank(n, 0.0);  // kept first (by position), the rest after
          for (int i : kept) rank[i] = 1.0;
          return rank;
        };
      }
      std::string spec = "keydiff:keep=0.3,block=" + std::to_string(block);
      if (decode) spec += ",mode=decode";
      require_matches_reference(spec, ev_context(d, p, total), b, ref);
    }
  }
  // A block covering the rest of the prompt scores the whole prompt at once.
  auto one = ev_state("keydiff:keep=0.3,block=0", ev_context(d, p, total));
  auto big = ev_state("keydiff:keep=0.3,block=63", ev_context(d, p, total));
  one->prefill(b.k.topRows(p), b.v.topRows(p), {});
  big->prefill(b.k.topRows(p), b.v.topRows(p), {});
  CHECK(present_set(*one) == present_set(*big));
}

TEST_CASE("keydiff keeps the distinctive keys", "[eviction][keydiff]") {
  const int d = 8, p = 50;
  Rng rng(2);
  EvBlock b{random_matrix(p, d, rng, 0.05), random_matrix(p, d, rng), {}};
  for (int i = 0; i < p; ++i) b.k(i, 0) += 1.0f;  // everyone points along channel 0 ...
  const std::set<int> odd{7, 19, 33};
  for (int i : odd) b.k.row(i) << 0, 0, 0, 1, 0, 0, 0, 0;  // ... except three
  auto s = ev_state("keydiff:keep_tokens=3,block=0", ev_context(d, p, p));
  s->prefill(b.k, b.v, {});
  CHECK(present_set(*s) == odd);
}

TEST_CASE("random follows its documented stream and is uniform", "[eviction][random]") {
  const int d = 4, p = 40, total = 70, budget = 10;
  const EvBlock b = random_ev_block(total, d, 1, 1);
  BlockContext ctx = ev_context(d, p, total);
  ctx.layer = 2;
  ctx.kv_head = 1;
  ctx.seed = 99;
  // Reference: one U[0,1) draw per present position, in position order, per call.
  Rng rng = Rng::for_block(99, 2, 1, kRandomDropperPurpose);
  auto draws = [&](int n, const std::vector<char>& pr) {
    std::vector<double> s(n, 0.0);
    for (int i = 0; i < n; ++i)
      if (pr[i]) s[i] = rng.uniform();
    return s;
  };
  RefScoredDropper ref;
  ref.budget = budget;
  ref.decode = true;
  ref.prompt_scores = [&](int n) { return draws(n, std::vector<char>(n, 1)); };
  ref.decode_scores = [&](int t, const std::vector<char>& pr) { return draws(t + 1, pr); };
  require_matches_reference("random:keep=0.25,mode=decode", ctx, b, ref);

  // Uniform: over 2000 seeds every prompt position is kept with probability B/P.
  std::vector<int> hits(p, 0);
  const int seeds = 2000;
  for (int seed = 0; seed < seeds; ++seed) {
    ctx.seed = static_cast<std::uint64_t>(seed);
    auto s = ev_state("random:keep=0.25", ctx);
    s->prefill(b.k.topRows(p), b.v.topRows(p), {});
    for (int i : present_set(*s)) ++hits[i];
  }
  const double expect = seeds * 0.25, sd = std::sqrt(seeds * 0.25 * 0.75);
  for (int i = 0; i < p; ++i) CHECK(std::abs(hits[i] - expect) < 5 * sd);
  // Heads and seeds give different sets; the same seed the same set.
  auto a = ev_state("random:keep=0.25", ctx), same = ev_state("random:keep=0.25", ctx);
  BlockContext other = ctx;
  other.kv_head = 0;
  auto c = ev_state("random:keep=0.25", other);
  for (CacheState* s : {a.get(), same.get(), c.get()}) s->prefill(b.k.topRows(p), b.v.topRows(p), {});
  CHECK(present_set(*a) == present_set(*same));
  CHECK(present_set(*a) != present_set(*c));
}

TEST_CASE("scored droppers: budget, modes, recent window and parameter rules", "[eviction]") {
  const int d = 8, p = 50, total = 90;
  const EvBlock b = random_ev_block(total, d, 1, 5);
  const BlockContext ctx = ev_context(d, p, total);
  for (const std::string m : {"tova", "knorm", "keydiff", "expected-attention", "leverage", "random"}) {
    INFO(m);
    // mode=prefill: B = floor(0.2 · 50) = 10 prompt tokens, every decode token kept.
    auto pre = ev_state(m + ":keep=0.2", ctx);
    pre->prefill(b.k.topRows(p), b.v.topRows(p), ev_rows(b, 0, p));
    CHECK(present_set(*pre).size() == 10);
    for (int t = p; t < total; ++t) pre->append(b.k.row(t), b.v.row(t), ev_rows(b, t, 1));
    CHECK(present_set(*pre).size() == 10 + total - p);
    // mode=decode with recent = 0.5: kept = B, and the newest 5 are always there.
    auto dec = ev_state(m + ":keep_tokens=10,mode=decode,recent=0.5", ctx);
    dec->prefill(b.k.topRows(p), b.v.topRows(p), ev_rows(b, 0, p));
    for (int t = p; t < total; ++t) {
      dec->append(b.k.row(t), b.v.row(t), ev_rows(b, t, 1));
      const std::set<int> kept = present_set(*dec);
      REQUIRE(kept.size() == 10);
      for (int i = t - 4; i <= t; ++i) REQUIRE(kept.count(i));
      REQUIRE(dec->bits().total() == ev_dropper_bits(t + 1, 10, d));
    }
    // A prompt within budget is kept whole with no index bits; B never drops below 1.
    auto whole = ev_state(m + ":keep_tokens=60", ctx);
    whole->prefill(b.k.topRows(p), b.v.topRows(p), ev_rows(b, 0, p));
    CHECK(whole->view().present == nullptr);
    CHECK(whole->bits().total() == 32ULL * d * p);
    auto one = ev_state(m + ":keep=0", ctx);
    one->prefill(b.k.topRows(p), b.v.topRows(p), ev_rows(b, 0, p));
    CHECK(present_set(*one).size() == 1);
    // `recent` only applies with mode=decode.
    CHECK_THROWS_WITH(Registry::global().build(m + ":recent=0.5"), Contains("recent"));
  }
  CHECK_THROWS_WITH(ev_state("tova", ctx)->prefill(b.k.topRows(p), b.v.topRows(p), QueryGroup{}),
                    Contains("needs queries"));
}

TEST_CASE("scored droppers compose with a per-token inner quantizer", "[eviction][compose]") {
  const int d = 32, p = 60;
  const EvBlock b = random_ev_block(p, d, 1, 8);
  for (const std::string m : {"tova", "knorm", "keydiff", "expected-attention", "leverage", "random", "lagkv",
                              "chunkkv"}) {
    INFO(m);
    auto s = ev_state(m + ":keep=0.3,inner=(uniform:bits=2,group=0,axis=token)", ev_context(d, p, p));
    s->prefill(b.k, b.v, ev_rows(b, 0, p));
    const auto kept = static_cast<std::uint64_t>(present_set(*s).size());
    CHECK(s->bits().total() == kept * 2 * (2ULL * d + 32) + std::min<std::uint64_t>(p, 32 * kept));
    CHECK_THROWS_WITH(Registry::global().build(m + ":inner=(kivi)"), Contains("per-token"));
  }
}

TEST_CASE("eviction presets keep the fraction they name", "[eviction][presets]") {
  const int d = 8, p = 100;
  const EvBlock b = random_ev_block(p, d, 1, 77);
  for (const std::string m : {"tova", "knorm", "keydiff", "lagkv", "expected-attention", "chunkkv", "leverage",
                              "random"})
    for (const int pct : {20, 50}) {
      const std::string preset = m + "-" + std::to_string(pct) + "pct";
      INFO(preset);
      auto s = ev_state(preset, ev_context(d, p, p));
      s->prefill(b.k, b.v, ev_rows(b, 0, p));
      const auto kept = static_cast<int>(present_set(*s).size());
      if (m == "chunkkv")
        CHECK((kept <= pct && kept > pct - 10));  // whole chunks of 10 below the budget
      else
        CHECK(kept == pct);
    }
  for (const char* p2 : {"adakv-20pct", "adakv-50pct", "criticalkv-20pct", "criticalkv-50pct", "think-50pct",
                         "think-60pct"})
    CHECK(Registry::global().build(p2) != nullptr);
}
