// The replay engine over a dump file: thread-count invariance, GQA head
// mapping, layer selection and the summary's ratios.
#include <catch2/catch.hpp>

#include <fmt/format.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>

#include "kvlab/compressors/layer_state.hpp"
#include "kvlab/compressors/registry.hpp"
#include "kvlab/io/synth.hpp"
#include "kvlab/replay/job_summary.hpp"
#include "test_support.hpp"

using namespace kvlab;
namespace fs = std::filesystem;

namespace {

std::string tiny_dump() {
  static const std::string path = test::write_tiny_dump(test::process_temp_path("kvlab_test_replay") += ".h5");
  return path;
}

// Records which queries each block was given at prefill.
class QueryProbe : public Compressor {
 public:
  struct State : CacheState {
    explicit State(const BlockContext& ctx, std::vector<std::vector<float>>* seen_by_head)
        : inner(Registry::global().build("fp16")->new_state(ctx)), seen(seen_by_head), head(ctx.kv_head) {}
    void prefill(ConstMatrixRef k, ConstMatrixRef v, const QueryGroup& q) override {
      for (const auto& m : q) (*seen)[head].push_back(m(0, 0));
      inner->prefill(k, v, q);
    }
    void append(ConstRowRef k, ConstRowRef v, const QueryGroup& q) override { inner->append(k, v, q); }
    int size() const override { return inner->size(); }
    CacheView view() const override { return inner->view(); }
    BitCount bits() const override { return inner->bits(); }
    std::unique_ptr<CacheState> inner;
    std::vector<std::vector<float>>* seen;
    int head;
  };
  std::unique_ptr<CacheState> new_state(const BlockContext& ctx) const override {
    return std::make_unique<State>(ctx, &seen);
  }
  mutable std::vector<std::vector<float>> seen = std::vector<std::vector<float>>(8);
};

}  // namespace

TEST_CASE("replay results do not depend on the thread count", "[replay]") {
  const DumpReader reader(tiny_dump());
  std::vector<std::unique_ptr<Compressor>> owned;
  std::vector<const Compressor*> jobs;
  for (const auto& m : Registry::global().methods()) {
    owned.push_back(Registry::global().build(m.name));
    jobs.push_back(owned.back().get());
  }
  ReplayOptions o;
  o.eval_every = 8;
  o.threads = 1;
  const auto a = replay_dump(reader, jobs, o);
  o.threads = 2;
  const auto b = replay_dump(reader, jobs, o);
  for (std::size_t j = 0; j < jobs.size(); ++j) {
    INFO(jobs[j]->spec());
    for (std::size_t i = 0; i < a[j].blocks.size(); ++i) {
      const auto &x = a[j].blocks[i], &y = b[j].blocks[i];
      CHECK(x.bits == y.bits);
      CHECK(x.values.sq_err == y.values.sq_err);
      CHECK(x.attn.out_rel == y.attn.out_rel);
      CHECK(x.attn.kl == y.attn.kl);
      REQUIRE(x.steps.size() == y.steps.size());
      for (std::size_t s = 0; s < x.steps.size(); ++s) CHECK(x.steps[s].attn.out_rel == y.steps[s].attn.out_rel);
    }
  }
}

TEST_CASE("GQA: kv head h gets query heads h*g .. h*g+g-1", "[replay]") {
  const DumpReader reader(tiny_dump());
  const DumpInfo& info = reader.info();
  REQUIRE(info.group_size() == 2);
  const LayerData layer = reader.read_layer(0);
  QueryProbe probe;
  probe.set_identity("probe", "probe");
  const Compressor* jobs[] = {&probe};
  ReplayOptions o;
  o.layers = {0};
  o.threads = 1;
  replay_dump(reader, jobs, o);
  for (int h = 0; h < info.num_kv_heads; ++h) {
    REQUIRE(probe.seen[h].size() == 2);
    CHECK(probe.seen[h][0] == layer.queries[h * 2](0, 0));
    CHECK(probe.seen[h][1] == layer.queries[h * 2 + 1](0, 0));
  }
}

TEST_CASE("summary: ratio and bits per element from the exact bit count", "[replay]") {
  const DumpReader reader(tiny_dump());
  const DumpInfo& info = reader.info();
  const auto c = Registry::global().build("uniform:bits=4,group=32");
  const Compressor* jobs[] = {c.get()};
  ReplayOptions o;
  o.max_steps = 10;
  o.layers = {1};
  const auto r = replay_dump(reader, jobs, o);
  const JobSummary s = summarize(r[0]);
  const std::uint64_t t = info.prompt_len + 10, d = info.head_dim;
  const std::uint64_t groups = 2 * t * (d / 32) * info.num_kv_heads;
  const std::uint64_t bits = 4 * 2 * t * d * info.num_kv_heads + 32 * groups;
  CHECK(s.bits.total() == bits);
  CHECK(s.baseline_bits == 16 * 2 * t * d * info.num_kv_heads);
  CHECK(s.compression_ratio == Approx(static_cast<double>(s.baseline_bits) / static_cast<double>(bits)));
  CHECK(s.bits_per_element == Approx(4.0 + 32.0 / 32.0));
  CHECK(s.layers == 1);
  CHECK(s.tokens == static_cast<int>(t));
}

TEST_CASE("replay rejects out-of-range layers", "[replay]") {
  const DumpReader reader(tiny_dump());
  const auto c = Registry::global().build("fp16");
  const Compressor* jobs[] = {c.get()};
  ReplayOptions o;
  o.layers = {7};
  CHECK_THROWS_WITH(replay_dump(reader, jobs, o), Catch::Contains("layer 7 is out of range"));
}

TEST_CASE("jobs that need queries fail on a dump without them; the others run", "[replay]") {
  test::TempDir dir("kvlab_noq");
  const DumpReader reader(test::write_tiny_dump(dir.file("noq.h5"), false));
  const auto fp16 = Registry::global().build("fp16");
  const auto h2o = Registry::global().build("h2o-20pct");
  const Compressor* jobs[] = {fp16.get(), h2o.get()};
  ReplayOptions o;
  o.attention = true;
  auto r = replay_dump(reader, jobs, o);
  CHECK_THAT(r[0].error, Catch::Contains("attention metrics need recorded queries"));
  o.attention = false;
  r = replay_dump(reader, jobs, o);
  CHECK(r[0].ok());
  CHECK(r[0].blocks.size() == static_cast<std::size_t>(reader.info().num_layers * reader.info().num_kv_heads));
  CHECK_THAT(r[1].error, Catch::Contains("needs recorded queries"));
}

namespace {

// A layer-scoped compressor for the engine's tests: one state for the whole
// layer that feeds an inner block-scoped method per head, and checks it is fed
// every head of its layer at every step.
class LayerOf : public Compressor {
 public:
  explicit LayerOf(std::string inner) : inner_(Registry::global().build(inner)) {}
  Scope scope() const override { return Scope::Layer; }
  std::unique_ptr<LayerCacheState> new_layer_state(const BlockContext& ctx) const override {
    struct State : LayerCacheState {
      std::unique_ptr<LayerCacheState> inner;
      int expected;
      int heads() const override { return inner->heads(); }
      void prefill(std::span<const ConstMatrixRef> k, std::span<const ConstMatrixRef> v,
                   std::span<const QueryGroup> q) override {
        KVLAB_ASSERT(static_cast<int>(k.size()) == expected && static_cast<int>(q.size()) == expected);
        inner->prefill(k, v, q);
      }
      void append(std::span<const ConstRowRef> k, std::span<const ConstRowRef> v,
                  std::span<const QueryGroup> q) override {
        KVLAB_ASSERT(static_cast<int>(k.size()) == expected);
        inner->append(k, v, q);
      }
      const CacheReader& head(int h) const override { return inner->head(h); }
    };
    auto s = std::make_unique<State>();
    s->inner = make_layer_state(*inner_, ctx, 0, ctx.num_kv_heads);
    s->expected = ctx.num_kv_heads;
    return s;
  }

 private:
  std::unique_ptr<Compressor> inner_;
};

}  // namespace

TEST_CASE("layer-scoped states replay like the per-head ones and are thread-invariant", "[replay][scope]") {
  const DumpReader reader(tiny_dump());
  const auto kivi = Registry::global().build("kivi:bits=2,group=16,residual=32");
  const auto h2o = Registry::global().build("h2o-20pct");
  const LayerOf layer_kivi("kivi:bits=2,group=16,residual=32"), layer_h2o("h2o-20pct");
  const Compressor* jobs[] = {kivi.get(), &layer_kivi, h2o.get(), &layer_h2o};
  ReplayOptions o;
  o.eval_every = 4;
  for (int threads : {1, 2, 3}) {
    o.threads = threads;
    const auto r = replay_dump(reader, jobs, o);
    for (int pair : {0, 2}) {
      const JobResult &block = r[static_cast<std::size_t>(pair)], &layer = r[static_cast<std::size_t>(pair + 1)];
      REQUIRE(layer.ok());
      REQUIRE(block.blocks.size() == layer.blocks.size());
      for (std::size_t b = 0; b < block.blocks.size(); ++b) {
        CHECK(layer.blocks[b].layer == block.blocks[b].layer);
        CHECK(layer.blocks[b].kv_head == block.blocks[b].kv_head);
        CHECK(layer.blocks[b].bits == block.blocks[b].bits);
        CHECK(layer.blocks[b].values.sq_err == block.blocks[b].values.sq_err);
        CHECK(layer.blocks[b].keys.sq_err == block.blocks[b].keys.sq_err);
        CHECK(layer.blocks[b].attn.kl == block.blocks[b].attn.kl);
        REQUIRE(layer.blocks[b].steps.size() == block.blocks[b].steps.size());
        CHECK(layer.blocks[b].steps.back().attn.out_rel == block.blocks[b].steps.back().attn.out_rel);
      }
    }
  }
}

namespace {

// Throws at the decode step `at` of kv head 1 (a compressor bug or a
// constraint found late).
class FailsLate : public Compressor {
 public:
  std::unique_ptr<CacheState> new_state(const BlockContext& ctx) const override {
    struct State : CacheState {
      std::unique_ptr<CacheState> inner;
      bool fail;
      void prefill(ConstMatrixRef k, ConstMatrixRef v, const QueryGroup& q) override { inner->prefill(k, v, q); }
      void append(ConstRowRef k, ConstRowRef v, const QueryGroup& q) override {
        if (fail && inner->size() == 140) kvlab::fail("late failure");
        inner->append(k, v, q);
      }
      int size() const override { return inner->size(); }
      CacheView view() const override { return inner->view(); }
      BitCount bits() const override { return inner->bits(); }
    };
    auto s = std::make_unique<State>();
    s->inner = Registry::global().build("fp16")->new_state(ctx);
    s->fail = ctx.kv_head == 1;
    return s;
  }
};

}  // namespace

TEST_CASE("a failing job fails alone; the rest of its batch completes", "[replay]") {
  const DumpReader reader(tiny_dump());
  const auto kivi = Registry::global().build("kivi-2bit");
  FailsLate bad;
  bad.set_identity("bad", "bad");
  const Compressor* jobs[] = {kivi.get(), &bad, kivi.get()};
  ReplayOptions o;
  o.eval_every = 16;
  const auto r = replay_dump(reader, jobs, o);
  CHECK(r[0].ok());
  CHECK(r[2].ok());
  CHECK(r[1].error == "late failure");
  CHECK(r[1].blocks.empty());
  CHECK(summarize(r[0]).v_rel_err_global == summarize(r[2]).v_rel_err_global);
}

TEST_CASE("a job's results do not depend on the jobs replayed with it", "[replay]") {
  // Jobs of a batch share the recorded attention and run in lockstep groups;
  // alone, each computes its own. Every number must be the same.
  const DumpReader reader(tiny_dump());
  std::vector<std::unique_ptr<Compressor>> owned;
  std::vector<const Compressor*> jobs;
  for (const auto& m : Registry::global().methods()) {
    owned.push_back(Registry::global().build(m.name));
    jobs.push_back(owned.back().get());
  }
  ReplayOptions o;
  o.eval_every = 3;
  o.max_steps = 70;
  o.threads = 2;
  const auto together = replay_dump(reader, jobs, o);
  o.threads = 1;
  for (std::size_t j = 0; j < jobs.size(); ++j) {
    INFO(jobs[j]->spec());
    const Compressor* one[] = {jobs[j]};
    const auto alone = replay_dump(reader, one, o);
    REQUIRE(alone[0].ok() == together[j].ok());
    REQUIRE(alone[0].blocks.size() == together[j].blocks.size());
    for (std::size_t b = 0; b < alone[0].blocks.size(); ++b) {
      const BlockResult &x = alone[0].blocks[b], &y = together[j].blocks[b];
      REQUIRE(x.steps.size() == y.steps.size());
      for (std::size_t s = 0; s < x.steps.size(); ++s) {
        const StepPoint &p = x.steps[s], &q = y.steps[s];
        CHECK(p.attn.out_rel == q.attn.out_rel);
        CHECK(p.attn.kl == q.attn.kl);
        CHECK(p.attn.kl_rev == q.attn.kl_rev);
        CHECK(p.attn.dropped_mass == q.attn.dropped_mass);
        CHECK((p.values.sq_err == q.values.sq_err && p.values.max_abs == q.values.max_abs));
        CHECK((p.keys.sq_err == q.keys.sq_err || (std::isnan(p.keys.sq_err) && std::isnan(q.keys.sq_err))));
        CHECK(p.bits == q.bits);
      }
    }
  }
}
