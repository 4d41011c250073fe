// GEAR's released-code compatibility: value outliers chosen per token across
// all kv heads of a layer (compat_outliers=true, a layer-scoped state), key
// outlier counts k = ⌊H·d·s/2⌋, and the released whole-cache path's ranks
// (recompress=true uses rank_decode). The reference below is written from the
// released rule, independently of gear_cross_head.cpp.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>

#include "kvlab/compressors/gear_cross_head.hpp"
#include "kvlab/compressors/layer_state.hpp"
#include "kvlab/compressors/registry.hpp"
#include "kvlab/core/fp16.hpp"
#include "kvlab/io/dump_reader.hpp"
#include "kvlab/replay/replay_dump.hpp"
#include "test_support.hpp"

using namespace kvlab;

namespace {

// The released selection for one token: the k largest and k smallest of the
// H·d entries (head-major), ties by flat index; returns flat indices.
std::vector<int> released_token_outliers(const std::vector<Matrix>& heads, int t, int k) {
  const int d = static_cast<int>(heads[0].cols()), m = static_cast<int>(heads.size()) * d;
  std::vector<std::pair<float, int>> v;
  for (int f = 0; f < m; ++f) v.push_back({heads[static_cast<std::size_t>(f / d)](t, f % d), f});
  std::sort(v.begin(), v.end());
  std::vector<int> out;
  for (int i = 0; i < m; ++i)
    if (2 * k >= m || i < k || i >= m - k) out.push_back(v[static_cast<std::size_t>(i)].second);
  return out;
}

// Expected reconstruction of one head's value segment rows[from, to) with the
// released selection over all heads' rows (outlier-quant: no low rank).
Matrix expected_values(const std::vector<Matrix>& all, int head, int from, int to, int k, const QuantConfig& q) {
  std::vector<Matrix> seg;
  for (const Matrix& h : all) seg.push_back(h.middleRows(from, to - from));
  const int n = to - from, d = static_cast<int>(all[0].cols());
  OutlierSet s;
  s.mask = ElementMask::Zero(n, d);
  for (int t = 0; t < n; ++t)
    for (int f : released_token_outliers(seg, t, k))
      if (f / d == head) {
        s.mask(t, f % d) = 1;
        s.entries.push_back({t, f % d, round_to_fp16(seg[static_cast<std::size_t>(head)](t, f % d))});
      }
  Matrix out(n, d);
  fake_quantize(seg[static_cast<std::size_t>(head)], q, out, &s.mask);
  for (const SparseEntry& e : s.entries) out(e.row, e.col) = e.value;
  return out;
}

BlockContext layer_context(int heads, int d, int tokens, int prompt) {
  BlockContext c = test::block_context(d, tokens, prompt, 3);
  c.num_kv_heads = heads;
  return c;
}

// Feeds a layer state: prompt [0, P), then one token at a time up to `end`.
void feed_layer(LayerCacheState& st, const std::vector<Matrix>& K, const std::vector<Matrix>& V, int P, int end) {
  const std::vector<QueryGroup> q(K.size());
  std::vector<ConstMatrixRef> pk, pv;
  for (std::size_t j = 0; j < K.size(); ++j) {
    pk.emplace_back(K[j].topRows(P));
    pv.emplace_back(V[j].topRows(P));
  }
  st.prefill(pk, pv, q);
  for (int t = P; t < end; ++t) {
    std::vector<ConstRowRef> k, v;
    for (std::size_t j = 0; j < K.size(); ++j) {
      k.emplace_back(K[j].row(t));
      v.emplace_back(V[j].row(t));
    }
    st.append(k, v, q);
  }
}

}  // namespace

TEST_CASE("cross-head value outliers differ from the per-head rule on a hand-made tensor", "[gear][compat]") {
  // H = 2, d = 4, s = 0.25: released k = ⌊2·4·0.25/2⌋ = 1 per token over 8 entries;
  // kvlab's per-head rule gives ⌊0.25·4/2⌋ = 0.
  CHECK(released_outlier_count(2, 4, 0.25) == 1);
  CHECK(outlier_count_per_side(OutlierConfig{QuantAxis::PerToken, 0.25, -1}, 4) == 0);
  Matrix h0(3, 4), h1(3, 4);
  h0 << 5, .1f, .2f, .3f,  //  token 0: max in head 0, min in head 1
      9, -8, .1f, .2f,     //  token 1: both extremes in head 0, none in head 1
      1, 1, 1, 1;          //  token 2: all equal: ties by flat index (0 smallest, 7 largest)
  h1 << .4f, -7, .5f, .6f,  //
      .3f, .4f, .5f, .6f,   //
      1, 1, 1, 1;
  const std::vector<ConstMatrixRef> heads{h0, h1};
  const auto sel = select_outliers_across_heads(heads, 1);
  REQUIRE(sel.size() == 2);
  ElementMask m0(3, 4), m1(3, 4);
  m0 << 1, 0, 0, 0, 1, 1, 0, 0, 1, 0, 0, 0;
  m1 << 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1;
  CHECK(sel[0].mask == m0);
  CHECK(sel[1].mask == m1);
  CHECK(sel[0].entries.size() == 4);
  CHECK(sel[1].entries.size() == 2);
  CHECK(sel[1].entries[0].value == -7.0f);
  // The per-head rule on the same tensor keeps nothing.
  CHECK(extract_outliers(h0, OutlierConfig{QuantAxis::PerToken, 0.25, -1}).entries.empty());
  // 2k ≥ H·d keeps every entry.
  CHECK(select_outliers_across_heads(heads, 4)[1].entries.size() == 12);
}

TEST_CASE("compat_outliers=true: values equal a plain reference of the released selection", "[gear][compat]") {
  // d = 64, s = 0.02: per head k = 0 (no value outliers at all), across 2 heads k = 1.
  const int H = 2, d = 64, P = 100, N = 170;
  std::vector<Matrix> K, V;
  for (int j = 0; j < H; ++j) {
    K.push_back(test::random_matrix(N, d, 10 + j));
    V.push_back(test::random_matrix(N, d, 20 + j, j == 0 ? 3.0 : 1.0));  // head 0 holds most extremes
  }
  const auto compat = Registry::global().build("outlier-quant:bits=2,group=32,sparsity=0.02,buffer=32,compat_outliers=true");
  const auto plain = Registry::global().build("outlier-quant:bits=2,group=32,sparsity=0.02,buffer=32");
  REQUIRE(compat->scope() == Compressor::Scope::Layer);
  REQUIRE(plain->scope() == Compressor::Scope::Block);
  const BlockContext ctx = layer_context(H, d, N, P);
  auto st = make_layer_state(*compat, ctx, 0, H);
  auto ref = make_layer_state(*plain, ctx, 0, H);
  feed_layer(*st, K, V, P, N);
  feed_layer(*ref, K, V, P, N);
  // Value segments: the prompt [0, 100), then [100, 132), [132, 164); 6 tokens still FP16.
  const QuantConfig q{2, QuantAxis::PerToken, 32};
  std::uint64_t value_outliers = 0;
  for (int j = 0; j < H; ++j) {
    const CacheView v = st->head(j).view();
    CHECK(v.values.topRows(P) == expected_values(V, j, 0, P, 1, q));
    CHECK(v.values.middleRows(100, 32) == expected_values(V, j, 100, 132, 1, q));
    CHECK(v.values.middleRows(132, 32) == expected_values(V, j, 132, 164, 1, q));
    CHECK(v.values.bottomRows(6) == V[static_cast<std::size_t>(j)].bottomRows(6));
    // Sparse entries of this head: keys k = ⌊2·64·0.02/2⌋ = 1 per channel and side in each of
    // their 3 segments (prefill ⌊100/32⌋·32 = 96 tokens, then two of 32), plus its value outliers.
    const std::uint64_t head_values = st->head(j).bits().sparse / 48 - 2ULL * d * 3;
    value_outliers += head_values;
    // Per head (kvlab's rule, k = 0 at d = 64) there are no value outliers: a head that got
    // some across heads differs from it, one that got none does not.
    if (head_values > 0)
      CHECK(ref->head(j).view().values != v.values);
    else
      CHECK(ref->head(j).view().values == v.values);
  }
  // 2 value outliers per compressed token (164 of them), shared by the heads; head 0 (values
  // 3× larger) takes most of them.
  CHECK(value_outliers == 2ULL * 164);
  CHECK(st->head(0).bits().sparse > st->head(1).bits().sparse);
}

TEST_CASE("compat_outliers=true with recompress=true selects on the cache as stored", "[gear][compat]") {
  const int H = 2, d = 64, P = 64, N = 200;
  std::vector<Matrix> K, V;
  for (int j = 0; j < H; ++j) {
    K.push_back(test::random_matrix(N, d, 30 + j));
    V.push_back(test::random_matrix(N, d, 40 + j));
  }
  const auto c = Registry::global().build("gear:bits=2,group=64,buffer=64,rank_decode=2,recompress=true,compat_outliers=true");
  auto st = make_layer_state(*c, layer_context(H, d, N, P), 0, H);
  feed_layer(*st, K, V, P, N);
  // Last recompression at t = 192 (the codec checks that every head's segment
  // is exactly the rows the selection was made on): values 2 outliers per token
  // over the layer, keys 2 per channel of each head.
  std::uint64_t sparse = 0, lowrank = 0;
  for (int j = 0; j < H; ++j) {
    sparse += static_cast<std::uint64_t>(st->head(j).bits().sparse);
    lowrank += static_cast<std::uint64_t>(st->head(j).bits().lowrank);
    CHECK(st->head(j).view().values.bottomRows(8) == V[static_cast<std::size_t>(j)].bottomRows(8));
  }
  CHECK(sparse == 48ULL * (2 * 192 + 2ULL * d * H));
  CHECK(lowrank == 16ULL * 2 * H * (192 + d) * 2);  // rank_decode = 2 for K and V of each head
}

TEST_CASE("recompress=true follows the released whole-cache ranks (rank_decode; rank does not apply)", "[gear][compat]") {
  const auto& reg = Registry::global();
  CHECK_THROWS_WITH(reg.build("gear:recompress=true,rank=8"), Catch::Contains("'rank' has no effect here"));
  CHECK(reg.build("gear-2bit:recompress=true")->spec().find("rank=") == std::string::npos);
  CHECK_NOTHROW(reg.build("gear:recompress=true,rank_decode=3"));
  CHECK_THROWS_WITH(reg.build("gear:recompress=true,rank_decode=0,loop=2"), Catch::Contains("'loop' has no effect"));
  const int d = 64, P = 128;
  const Matrix K = test::random_matrix(P, d, 1), V = test::random_matrix(P, d, 2);
  for (int r : {1, 3}) {
    auto st = reg.build(fmt::format("gear:bits=2,group=64,recompress=true,rank_decode={}", r))
                  ->new_state(test::block_context(d, P, P, 0));
    test::feed(*st, K, V, P, P);
    CHECK(st->bits().lowrank == 16ULL * 2 * (P + d) * static_cast<std::uint64_t>(r));  // at the prompt already
  }
}

TEST_CASE("compat_outliers=true replays identically for any thread count", "[gear][compat][replay]") {
  const std::string dump = test::write_tiny_dump(test::process_temp_path("kvlab_test_gear_compat") += ".h5");
  const DumpReader reader(dump);
  const auto c = Registry::global().build("gear:bits=2,group=16,buffer=16,sparsity=0.1,compat_outliers=true");
  const Compressor* jobs[] = {c.get()};
  ReplayOptions o;
  o.eval_every = 4;
  std::vector<JobResult> runs;
  for (int threads : {1, 3}) {
    o.threads = threads;
    runs.push_back(std::move(replay_dump(reader, jobs, o).front()));
    REQUIRE(runs.back().ok());
  }
  REQUIRE(runs[0].blocks.size() == runs[1].blocks.size());
  for (std::size_t b = 0; b < runs[0].blocks.size(); ++b) {
    CHECK(runs[0].blocks[b].values.sq_err == runs[1].blocks[b].values.sq_err);
    CHECK(runs[0].blocks[b].bits == runs[1].blocks[b].bits);
  }
  std::filesystem::remove(dump);
}
