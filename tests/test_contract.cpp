// One generic suite stamped out for every registered method and preset:
// shapes and present-mask consistent with the tokens fed, bit breakdown
// consistent, deterministic for a seed, and more bits never worse.
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <optional>

#include "kvlab/compressors/registry.hpp"
#include "kvlab/core/error.hpp"
#include "kvlab/io/synth.hpp"
#include "kvlab/compressors/layer_state.hpp"
#include "kvlab/replay/replay_block.hpp"
#include "synth_layer_fixture.hpp"

using namespace kvlab;

namespace {

using Fixture = test::SynthLayerFixture;

const Fixture& fixture() {
  static const Fixture f(192, 96, 5);
  return f;
}

std::vector<BlockResult> replay_all_heads(const Compressor& c, std::uint64_t seed = 0, int eval_every = 16) {
  const Fixture& f = fixture();
  const BlockContext base = f.context(c, seed);
  const std::vector<int> steps = evaluation_steps(f.info.seq_len - f.info.prompt_len, eval_every);
  // All kv heads through one LayerCacheState: a layer-scoped compressor's own,
  // or per-head states of a block-scoped one — the suite covers both kinds.
  const UnitInput in = f.unit();
  const auto state = make_layer_state(c, base, 0, f.info.num_kv_heads);
  return replay_unit(*state, in, steps, true);
}

std::vector<std::string> every_spec() {
  std::vector<std::string> specs;
  for (const auto& m : Registry::global().methods()) specs.push_back(m.name);
  for (const auto& p : Registry::global().presets()) specs.push_back(p.name);
  return specs;
}

double attention_error(const std::vector<BlockResult>& blocks) {
  double sum = 0;
  int n = 0;
  for (const auto& b : blocks) {
    sum += b.attn.out_rel;
    n += b.attn_evals;
  }
  return sum / n;
}

}  // namespace

TEST_CASE("contract: every method replays a block consistently", "[contract]") {
  const Fixture& f = fixture();
  for (const std::string& spec : every_spec()) {
    INFO("spec " << spec);
    const auto c = Registry::global().build(spec);
    const auto blocks = replay_all_heads(*c);
    for (const BlockResult& b : blocks) {
      CHECK(b.tokens == f.info.seq_len);
      REQUIRE(!b.steps.empty());
      CHECK(b.steps.front().tokens == f.info.prompt_len);
      CHECK(b.bits.total() > 0);
      CHECK(std::isfinite(b.values.rel()));
      CHECK(b.attn_evals == static_cast<int>(b.steps.size()) * f.info.group_size());
      CHECK(std::isfinite(b.attn.out_rel));
    }
  }
}

TEST_CASE("contract: measuring does not change the state", "[contract]") {
  // Views and bit counts taken at every 16th step must leave the final cache
  // exactly as a replay that only looks at the end (a state whose view() or
  // bits() has side effects would differ here).
  for (const std::string& spec : every_spec()) {
    INFO("spec " << spec);
    const auto c = Registry::global().build(spec);
    const auto often = replay_all_heads(*c, 3, 1), rarely = replay_all_heads(*c, 3, 0);
    REQUIRE(often.size() == rarely.size());
    for (std::size_t i = 0; i < often.size(); ++i) {
      CHECK(often[i].bits == rarely[i].bits);
      CHECK(often[i].values.sq_err == rarely[i].values.sq_err);
      CHECK((std::isnan(often[i].keys.sq_err) || often[i].keys.sq_err == rarely[i].keys.sq_err));
      CHECK(often[i].steps.back().attn.out_rel == rarely[i].steps.back().attn.out_rel);
    }
  }
}

TEST_CASE("contract: the view has one row per token fed and zero rows where absent", "[contract]") {
  const Fixture& f = fixture();
  const int d = f.info.head_dim, p = f.info.prompt_len;
  for (const std::string& spec : every_spec()) {
    INFO("spec " << spec);
    const auto c = Registry::global().build(spec);
    BlockContext ctx;
    ctx.layer = 1;
    ctx.head_dim = d;
    ctx.num_layers = f.info.num_layers;
    ctx.num_kv_heads = f.info.num_kv_heads;
    ctx.group_size = f.info.group_size();
    ctx.prompt_len = p;
    ctx.max_tokens = f.info.seq_len;
    ctx.rope = f.info.rope;
    ctx.calibration = c->calibrate(LayerView{f.layer.keys, f.layer.values, f.layer.queries}, ctx);
    const int g = f.info.group_size(), heads = f.info.num_kv_heads;
    auto state = make_layer_state(*c, ctx, 0, heads);
    std::vector<ConstMatrixRef> keys, values;
    std::vector<QueryGroup> q(static_cast<std::size_t>(heads));
    for (int h = 0; h < heads; ++h) {
      keys.emplace_back(f.layer.keys[static_cast<std::size_t>(h)].topRows(p));
      values.emplace_back(f.layer.values[static_cast<std::size_t>(h)].topRows(p));
      for (int j = 0; j < g; ++j) q[static_cast<std::size_t>(h)].emplace_back(f.layer.queries[static_cast<std::size_t>(h * g + j)].topRows(p));
    }
    state->prefill(keys, values, q);
    for (int t = p; t < f.info.seq_len; ++t) {
      std::vector<ConstRowRef> kt, vt;
      std::vector<QueryGroup> qt(static_cast<std::size_t>(heads));
      for (int h = 0; h < heads; ++h) {
        kt.emplace_back(f.layer.keys[static_cast<std::size_t>(h)].row(t));
        vt.emplace_back(f.layer.values[static_cast<std::size_t>(h)].row(t));
        for (int j = 0; j < g; ++j)
          qt[static_cast<std::size_t>(h)].emplace_back(f.layer.queries[static_cast<std::size_t>(h * g + j)].middleRows(t, 1));
      }
      state->append(kt, vt, qt);
      for (int h = 0; h < heads; ++h) {
        const CacheReader& head = state->head(h);
        const CacheView v = head.view();
        REQUIRE(head.size() == t + 1);
        REQUIRE(v.tokens() == t + 1);
        REQUIRE(v.values.cols() == d);
        CHECK(v.is_present(t));  // the newest token is always in the cache
        if (v.present)
          for (int i = 0; i <= t; ++i)
            if (!v.is_present(i)) CHECK(v.values.row(i).isZero(0));
      }
    }
  }
}

TEST_CASE("contract: identical seed gives identical results", "[contract]") {
  for (const std::string& spec : every_spec()) {
    INFO("spec " << spec);
    const auto c = Registry::global().build(spec);
    const auto a = replay_all_heads(*c, 42), b = replay_all_heads(*c, 42);
    for (std::size_t i = 0; i < a.size(); ++i) {
      CHECK(a[i].bits == b[i].bits);
      CHECK(a[i].values.sq_err == b[i].values.sq_err);
      CHECK(a[i].attn.out_rel == b[i].attn.out_rel);
      CHECK(a[i].attn.kl == b[i].attn.kl);
    }
  }
}

TEST_CASE("contract: more bits never give larger error", "[contract]") {
  for (const auto& m : Registry::global().methods()) {
    const bool has_bits = std::any_of(m.params.begin(), m.params.end(), [](const ParamSpec& p) {
      return p.name == "bits" && p.max >= 4;
    });
    if (!has_bits) continue;
    INFO("method " << m.name);
    double prev_v = INFINITY, prev_attn = INFINITY;
    for (int bits : {2, 3, 4}) {
      const auto c = Registry::global().build(fmt::format("{}:bits={}", m.name, bits));
      const auto blocks = replay_all_heads(*c);
      TensorError v;
      for (const auto& b : blocks) v += b.values;
      CHECK(v.rel() < prev_v);
      CHECK(attention_error(blocks) < prev_attn);
      prev_v = v.rel();
      prev_attn = attention_error(blocks);
    }
  }
}

TEST_CASE("contract: fp16 is exact and its size is the baseline", "[contract]") {
  const auto c = Registry::global().build("fp16");
  for (const BlockResult& b : replay_all_heads(*c)) {
    CHECK(b.keys.sq_err == 0.0);
    CHECK(b.values.sq_err == 0.0);
    CHECK(b.attn.out_rel == 0.0);
    CHECK(b.attn.kl == 0.0);
    CHECK(b.bits.total() == fp16_baseline_bits(b.tokens, b.head_dim));
  }
}

namespace {

// Alternative values of a parameter to try, in order (all valid for its type
// and range, none equal to `from`).
std::vector<std::string> alternatives(const ParamSpec& p, const std::string& from) {
  std::vector<std::string> out;
  auto add = [&](const std::string& v) {
    if (v != from && std::find(out.begin(), out.end(), v) == out.end()) out.push_back(v);
  };
  switch (p.type) {
    case ParamType::Bool: add(from == "true" ? "false" : "true"); break;
    case ParamType::Choice:
      for (const auto& c : p.choices) add(c);
      break;
    case ParamType::Int: {
      const long long d = std::stoll(from);
      for (long long v : {d + 1, d * 2, d / 2, d / 4, d / 8, d / 16, d / 32, d - 1, d + 2, 8LL, 16LL, 1LL, 0LL})
        if (static_cast<double>(v) >= p.min && static_cast<double>(v) <= p.max) add(fmt::format("{}", v));
      break;
    }
    case ParamType::Float: {
      const double d = std::stod(from);
      for (double v : {d * 2, d / 2, d + 0.1, 0.05, 0.3, 0.5, 0.01, p.min, p.max})
        if (v >= p.min && v <= p.max) add(fmt::format("{}", v));
      break;
    }
    case ParamType::Spec: break;
  }
  return out;
}

using Settings = std::vector<std::pair<std::string, std::string>>;

// Builds `method` with `set` (the rest default); nullopt if that is invalid.
std::optional<ResolvedSpec> try_resolve(const std::string& method, const Settings& set) {
  try {
    ResolvedSpec s = Registry::global().resolve(format_spec_text({method, set}));
    Registry::global().build(s);
    return s;
  } catch (const Error&) {
    return std::nullopt;
  }
}

// `set` with its last entry changed in; earlier entries that no longer apply
// are dropped (as a preset's would be).
std::optional<ResolvedSpec> resolve_with(const std::string& method, Settings set) {
  if (auto s = try_resolve(method, set)) return s;
  for (std::size_t i = 0; i + 1 < set.size(); ++i) {
    Settings fewer = set;
    fewer.erase(fewer.begin() + static_cast<std::ptrdiff_t>(i));
    if (auto s = resolve_with(method, fewer)) return s;
  }
  return std::nullopt;
}

// Configurations to test a parameter in: the defaults, then the defaults with
// one other parameter changed, then with two.
std::vector<Settings> base_settings(const MethodInfo& m, const ParamSpec& param, bool pairs) {
  std::vector<Settings> out{{}};
  for (const auto& a : m.params) {
    if (a.name == param.name || a.type == ParamType::Spec) continue;
    for (const auto& va : alternatives(a, a.default_value)) {
      out.push_back({{a.name, va}});
      if (!pairs) continue;
      for (const auto& b : m.params) {
        if (b.name <= a.name || b.name == param.name || b.type == ParamType::Spec) continue;
        for (const auto& vb : alternatives(b, b.default_value)) out.push_back({{a.name, va}, {b.name, vb}});
      }
    }
  }
  return out;
}

bool same_results(const std::vector<BlockResult>& a, const std::vector<BlockResult>& b) {
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (!(a[i].bits == b[i].bits) || a[i].values.sq_err != b[i].values.sq_err ||
        a[i].attn.out_rel != b[i].attn.out_rel || a[i].attn.kl != b[i].attn.kl)
      return false;
    if (!std::isnan(a[i].keys.sq_err) && a[i].keys.sq_err != b[i].keys.sq_err) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("contract: every parameter declared as applying changes the result", "[contract][params]") {
  // The other half of "parameters say when they apply": a parameter the
  // registry accepts must have an effect, so a sweep over it never writes rows
  // that look different but are not. For each parameter, in a configuration
  // where it applies, some other valid value must change bits or error.
  const Registry& r = Registry::global();
  // Does changing `p` away from its value in `base` change anything?
  auto has_effect = [&](const MethodInfo& m, const ParamSpec& p, const ResolvedSpec& b, const Settings& base) {
    const auto base_results = replay_all_heads(*r.build(b));
    for (const auto& alt : alternatives(p, b.values.text(p.name))) {
      Settings set = base;
      set.emplace_back(p.name, alt);
      const std::optional<ResolvedSpec> a = resolve_with(m.name, set);
      if (a && !same_results(base_results, replay_all_heads(*r.build(*a)))) return true;
    }
    return false;
  };
  for (const auto& m : r.methods()) {
    for (const auto& p : m.params) {
      if (p.type == ParamType::Spec) continue;  // nested specs are covered by their own method
      INFO("method " << m.name << ", parameter " << p.name);
      // 1. Somewhere it applies, it has an effect.
      std::optional<Settings> found;
      for (bool pairs : {false, true}) {
        for (const Settings& base : base_settings(m, p, pairs)) {
          const std::optional<ResolvedSpec> b = try_resolve(m.name, base);
          if (b && b->values.applies(p.name) && has_effect(m, p, *b, base)) {
            found = base;
            break;
          }
        }
        if (found) break;
      }
      REQUIRE(found.has_value());
      // 2. Every structural switch (a choice or flag value) under which it is
      //    declared to apply, it has an effect somewhere too: e.g. GEAR's
      //    group must not be declared as applying with backbone=kcvt.
      for (const auto& c : m.params) {
        if (c.name == p.name || (c.type != ParamType::Choice && c.type != ParamType::Bool)) continue;
        for (const auto& v : alternatives(c, c.default_value)) {
          bool applies = false, effective = false;
          for (Settings set : base_settings(m, p, false)) {
            std::erase_if(set, [&](const auto& kv) { return kv.first == c.name; });
            set.emplace_back(c.name, v);
            const std::optional<ResolvedSpec> b = try_resolve(m.name, set);
            if (!b || !b->values.applies(p.name)) continue;
            applies = true;
            if ((effective = has_effect(m, p, *b, set))) break;
          }
          INFO("with " << c.name << "=" << v);
          CHECK(effective == applies);
        }
      }
    }
  }
}
