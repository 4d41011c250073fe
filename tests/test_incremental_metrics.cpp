// Incremental per-step metrics: every method's changes_since is honest (rows
// it does not list are bit-identical to before), and replaying with the
// incremental K/V errors gives exactly the numbers of a full recomputation at
// every step, for every registered method and preset. Plus the pieces: the
// tracker against tensor_error, and the shared reference attention.
#include <catch2/catch.hpp>

#include <cmath>

#include "kvlab/compressors/layer_state.hpp"
#include "kvlab/compressors/registry.hpp"
#include "kvlab/io/synth.hpp"
#include "kvlab/metrics/tensor_error_tracker.hpp"
#include "kvlab/replay/reference_chunk.hpp"
#include "kvlab/replay/replay_block.hpp"
#include "synth_layer_fixture.hpp"
#include "test_support.hpp"

using namespace kvlab;

namespace {

using Fixture = test::SynthLayerFixture;

const Fixture& fixture() {
  static const Fixture f(256, 96, 11);
  return f;
}

std::vector<std::string> every_spec() {
  std::vector<std::string> specs;
  for (const auto& m : Registry::global().methods()) specs.push_back(m.name);
  for (const auto& p : Registry::global().presets()) specs.push_back(p.name);
  // Non-default paths whose changes differ: GEAR recompressing the whole
  // cache, droppers storing quantized tokens, a QJL buffer of 0.
  specs.push_back("gear:recompress=true,buffer=16");
  specs.push_back("h2o:inner=(uniform:bits=4,axis=token)");
  specs.push_back("qjl:buffer=0");
  specs.push_back("kivi:residual=32");  // frozen segments within the fixture's length
  specs.push_back("gear:buffer=32,group=32");
  return specs;
}

BlockContext layer_context(const Compressor& c) { return fixture().context(c); }

UnitInput layer_input() { return fixture().unit(); }

bool listed(const RowRanges& ranges, int row) {
  for (const RowRange& r : ranges)
    if (row >= r.begin && row < r.end) return true;
  return false;
}

// What a view showed: K̂, V̂ and the present flags.
struct Snapshot {
  Matrix keys, values;
  std::vector<std::uint8_t> present;
  int frozen = 0;
  explicit Snapshot(const CacheReader& head) : keys(head.view().keys), values(head.view().values) {
    const CacheView v = head.view();
    for (int i = 0; i < v.tokens(); ++i) present.push_back(v.is_present(i) ? 1 : 0);
    frozen = head.frozen_rows();
  }
};

// Every row the state leaves out of changes_since(before), and every row it
// had declared frozen, must be unchanged.
void check_unlisted_rows_unchanged(const CacheReader& head, const Snapshot& before, const std::string& where) {
  const int since = static_cast<int>(before.keys.rows());
  CacheChanges changes;
  head.changes_since(since, changes);
  const CacheView now = head.view();
  INFO(where << ": frozen " << before.frozen << " then " << head.frozen_rows() << " of " << now.tokens());
  REQUIRE((head.frozen_rows() >= before.frozen && head.frozen_rows() <= now.tokens()));
  for (int i = 0; i < before.frozen; ++i) {
    INFO("frozen row " << i);
    REQUIRE((now.is_present(i) ? 1 : 0) == before.present[i]);
    REQUIRE(now.keys.row(i) == before.keys.row(i));
    REQUIRE(now.values.row(i) == before.values.row(i));
  }
  for (const RowRanges* ranges : {&changes.keys, &changes.values})
    for (const RowRange& r : *ranges) {
      INFO(where << ": range [" << r.begin << ", " << r.end << ")");
      REQUIRE((r.begin >= 0 && r.begin <= r.end && r.end <= now.tokens()));
    }
  for (int i = 0; i < now.tokens(); ++i) {
    INFO(where << ": row " << i << " of " << now.tokens() << ", since " << since);
    if (i >= since) {
      REQUIRE(listed(changes.keys, i));  // appended rows are always listed
      REQUIRE(listed(changes.values, i));
      continue;
    }
    const bool present_same = (now.is_present(i) ? 1 : 0) == before.present[i];
    if (!listed(changes.keys, i)) {
      REQUIRE(present_same);
      REQUIRE(now.keys.row(i) == before.keys.row(i));
    }
    if (!listed(changes.values, i)) {
      REQUIRE(present_same);
      REQUIRE(now.values.row(i) == before.values.row(i));
    }
  }
}

void require_same(const TensorError& a, const TensorError& b) {
  if (std::isnan(a.sq_err)) {
    REQUIRE(std::isnan(b.sq_err));
    return;
  }
  REQUIRE(a.sq_err == b.sq_err);
  REQUIRE(a.sq_norm == b.sq_norm);
  REQUIRE(a.max_abs == b.max_abs);
}

void require_same_steps(const std::vector<BlockResult>& a, const std::vector<BlockResult>& b) {
  REQUIRE(a.size() == b.size());
  for (std::size_t h = 0; h < a.size(); ++h) {
    REQUIRE(a[h].steps.size() == b[h].steps.size());
    for (std::size_t s = 0; s < a[h].steps.size(); ++s) {
      INFO("head " << h << ", step " << a[h].steps[s].decode_step);
      const StepPoint &x = a[h].steps[s], &y = b[h].steps[s];
      require_same(x.keys, y.keys);
      require_same(x.values, y.values);
      REQUIRE(x.bits == y.bits);
      REQUIRE(x.attn.out_rel == y.attn.out_rel);
      REQUIRE(x.attn.kl == y.attn.kl);
      REQUIRE(x.attn.kl_rev == y.attn.kl_rev);
      REQUIRE(x.attn.dropped_mass == y.attn.dropped_mass);
    }
    require_same(a[h].keys, b[h].keys);
    require_same(a[h].values, b[h].values);
  }
}

// fp16 that rewrites row 0 at its 5th append but reports only the appended
// row: the incremental path must then disagree with the full one.
class LyingState : public CacheState {
 public:
  explicit LyingState(const BlockContext& ctx) : inner_(Registry::global().build("fp16")->new_state(ctx)) {}
  void prefill(ConstMatrixRef k, ConstMatrixRef v, const QueryGroup& q) override {
    inner_->prefill(k, v, q);
    prompt_ = size();
  }
  void append(ConstRowRef k, ConstRowRef v, const QueryGroup& q) override {
    inner_->append(k, v, q);
    if (size() == prompt_ + 5) row0_scale_ = 0.5f;
  }
  int size() const override { return inner_->size(); }
  CacheView view() const override {
    const CacheView v = inner_->view();
    copy_ = v.values;
    copy_.row(0) *= row0_scale_;
    return CacheView{v.keys, copy_, v.present};
  }
  BitCount bits() const override { return inner_->bits(); }
  void changes_since(int since, CacheChanges& out) const override {
    out.clear();
    out.add(since, size());
  }

 private:
  std::unique_ptr<CacheState> inner_;
  int prompt_ = 0;
  float row0_scale_ = 1.0f;
  mutable Matrix copy_;
};

class LyingCompressor : public Compressor {
 public:
  std::unique_ptr<CacheState> new_state(const BlockContext& ctx) const override {
    return std::make_unique<LyingState>(ctx);
  }
};

std::vector<BlockResult> replay_both_ways(const Compressor& c, bool incremental) {
  const std::unique_ptr<LayerCacheState> state = make_layer_state(c, layer_context(c), 0, fixture().info.num_kv_heads);
  LayerCacheState* states[] = {state.get()};
  const std::vector<int> steps = evaluation_steps(layer_input().decode_steps, 1);
  std::vector<UnitResult> r = replay_units(states, layer_input(), steps, UnitSettings{true, incremental});
  REQUIRE(r.front().error.empty());
  return std::move(r.front().blocks);
}

}  // namespace

TEST_CASE("changes_since lists every row that changed, for every method", "[incremental]") {
  const Fixture& f = fixture();
  const UnitInput in = layer_input();
  for (const std::string& spec : every_spec()) {
    const auto c = Registry::global().build(spec);
    const auto state = make_layer_state(*c, layer_context(*c), 0, f.info.num_kv_heads);
    const int n = state->heads();
    std::vector<ConstMatrixRef> keys, values;
    std::vector<QueryGroup> queries;
    for (const HeadInput& h : in.heads) {
      keys.emplace_back(h.keys.topRows(in.prompt_len));
      values.emplace_back(h.values.topRows(in.prompt_len));
      QueryGroup q;
      for (const Matrix& m : h.queries) q.emplace_back(m.topRows(in.prompt_len));
      queries.push_back(q);
    }
    state->prefill(keys, values, queries);
    for (int h = 0; h < n; ++h) {  // since 0: every row
      CacheChanges all;
      state->head(h).changes_since(0, all);
      for (int i = 0; i < in.prompt_len; ++i) REQUIRE((listed(all.keys, i) && listed(all.values, i)));
    }
    // Views a few steps apart too, so changes accumulate over several appends.
    for (const int stride : {1, 7}) {
      std::vector<Snapshot> before;
      for (int h = 0; h < n; ++h) before.emplace_back(state->head(h));
      for (int step = 1; step <= stride; ++step) {
        std::vector<ConstRowRef> k, v;
        std::vector<QueryGroup> q(static_cast<std::size_t>(n));
        const int pos = state->head(0).size();
        if (pos >= static_cast<int>(in.heads[0].keys.rows())) break;
        for (int h = 0; h < n; ++h) {
          k.emplace_back(in.heads[h].keys.row(pos));
          v.emplace_back(in.heads[h].values.row(pos));
          for (const Matrix& m : in.heads[h].queries) q[h].emplace_back(m.middleRows(pos, 1));
        }
        state->append(k, v, q);
      }
      for (int h = 0; h < n; ++h) check_unlisted_rows_unchanged(state->head(h), before[h], spec);
    }
    // Then every step to the end.
    while (state->head(0).size() < static_cast<int>(in.heads[0].keys.rows())) {
      std::vector<Snapshot> before;
      for (int h = 0; h < n; ++h) before.emplace_back(state->head(h));
      const int pos = state->head(0).size();
      std::vector<ConstRowRef> k, v;
      std::vector<QueryGroup> q(static_cast<std::size_t>(n));
      for (int h = 0; h < n; ++h) {
        k.emplace_back(in.heads[h].keys.row(pos));
        v.emplace_back(in.heads[h].values.row(pos));
        for (const Matrix& m : in.heads[h].queries) q[h].emplace_back(m.middleRows(pos, 1));
      }
      state->append(k, v, q);
      for (int h = 0; h < n; ++h) check_unlisted_rows_unchanged(state->head(h), before[h], spec);
    }
  }
}

TEST_CASE("incremental K/V errors equal a full recomputation at every step, for every method", "[incremental]") {
  for (const std::string& spec : every_spec()) {
    INFO(spec);
    const auto c = Registry::global().build(spec);
    require_same_steps(replay_both_ways(*c, true), replay_both_ways(*c, false));
  }
}

TEST_CASE("the comparison bites: a state that hides a rewritten row breaks the incremental path", "[incremental]") {
  const LyingCompressor c;
  const auto inc = replay_both_ways(c, true);
  const auto full = replay_both_ways(c, false);
  const StepPoint &a = inc[0].steps.back(), &b = full[0].steps.back();
  CHECK(a.values.sq_err == 0.0);  // the hidden rewrite of row 0 is missed
  CHECK(b.values.sq_err > 0.0);
}

TEST_CASE("tracker: any order of row updates gives tensor_error bit for bit", "[incremental][metrics]") {
  Rng rng(3);
  const int d = 37, rows = 300;  // d not a multiple of the lane count; rows span partial blocks
  const Matrix x = test::random_matrix(rows, d, rng);
  Matrix y = x + test::random_matrix(rows, d, rng, 0.1);
  TensorErrorTracker tracker;
  tracker.update(x, y, {{0, 10}});
  CHECK(tracker.total(10).sq_err == tensor_error(x.topRows(10), y.topRows(10)).sq_err);
  for (int t = 11; t <= rows; ++t) {
    RowRanges changed{{t - 1, t}};
    const int old = static_cast<int>(rng.uniform() * (t - 1));
    y.row(old) *= 1.01f;  // an old row rewritten, as a stream segment or eviction would
    changed.push_back({old, old + 1});
    tracker.update(x, y, changed);
    const TensorError a = tracker.total(t), b = tensor_error(x.topRows(t), y.topRows(t));
    REQUIRE(a.sq_err == b.sq_err);
    REQUIRE(a.sq_norm == b.sq_norm);
    REQUIRE(a.max_abs == b.max_abs);
  }
}

TEST_CASE("tensor_error equals a plain double sum to 1e-13", "[metrics]") {
  Rng rng(8);
  const Matrix x = test::random_matrix(200, 19, rng);
  const Matrix y = x + test::random_matrix(200, 19, rng, 0.3);
  double err = 0, norm = 0, mx = 0;
  for (int i = 0; i < 200; ++i)
    for (int c = 0; c < 19; ++c) {
      const double diff = static_cast<double>(x(i, c) - y(i, c));
      err += diff * diff;
      norm += static_cast<double>(x(i, c)) * x(i, c);
      mx = std::max(mx, std::abs(diff));
    }
  const TensorError e = tensor_error(x, y);
  CHECK(e.sq_err == Approx(err).epsilon(1e-13));
  CHECK(e.sq_norm == Approx(norm).epsilon(1e-13));
  CHECK(e.max_abs == mx);
}

TEST_CASE("a reference chunk gives each position the numbers of computing it alone", "[incremental][metrics]") {
  const UnitInput in = layer_input();
  const HeadInput& head = in.heads[1];
  const std::vector<int> positions{95, 96, 100, 159, 255};
  ReferenceChunk chunk;
  chunk.compute(head, positions);
  for (int s = 0; s < static_cast<int>(positions.size()); ++s) {
    ReferenceChunk alone;
    const int one[] = {positions[static_cast<std::size_t>(s)]};
    alone.compute(head, one);
    for (int j = 0; j < chunk.group(); ++j) {
      const ReferenceAttention a = chunk.at(s, j), b = alone.at(0, j);
      REQUIRE(a.tokens == b.tokens);
      REQUIRE(a.norm.max == b.norm.max);
      REQUIRE(a.norm.log_sum == b.norm.log_sum);
      REQUIRE(a.o_norm2 == b.o_norm2);
      for (int i = 0; i < a.tokens; ++i) REQUIRE((a.logits[i] == b.logits[i] && a.p[i] == b.p[i]));
      // And the logits are q·k as a plain float sum would give them, to float rounding.
      const int pos = positions[static_cast<std::size_t>(s)];
      for (int i = 0; i < a.tokens; i += 17)
        CHECK(a.logits[i] == Approx(head.queries[j].row(pos).dot(head.keys.row(i))).margin(1e-4));
    }
  }
}
