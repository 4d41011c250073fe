// kvlab's attention and RoPE against the NumPy references of
// tools/make_attention_fixtures.py: tiny dumps carrying every optional
// attention attribute (attn_scale, soft-cap, sliding windows, partial rotary
// with /rope_inv_freq, rope_attention_scaling, per-layer overrides) and, in
// /reference, what a reader must compute from them. The fixtures are made at
// test time with Debian's python3 (numpy, h5py); nothing binary is committed.
// KVLAB_ATTENTION_FIXTURES=DIR uses fixtures already made in DIR.
#include <hdf5.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "kvlab/attention/scores.hpp"
#include "kvlab/compressors/expected_attention.hpp"
#include "kvlab/compressors/registry.hpp"
#include "kvlab/io/dump_reader.hpp"
#include "kvlab/io/hdf5_handle.hpp"
#include "kvlab/metrics/attention.hpp"
#include "kvlab/quant/rope_transform.hpp"
#include "kvlab/replay/reference_chunk.hpp"
#include "kvlab/replay/replay_block.hpp"
#include "test_support.hpp"

using namespace kvlab;

namespace {

constexpr double kTol = 1e-6;

// The folder holding attention-{neox,gptj}.kvdump.h5, made once per process.
const std::string& fixture_dir() {
  static std::unique_ptr<test::TempDir> made;
  static std::string dir;
  if (!dir.empty()) return dir;
  if (const char* env = std::getenv("KVLAB_ATTENTION_FIXTURES"); env && *env) return dir = env;
  made = std::make_unique<test::TempDir>("kvlab_attention_fixtures_");
  const std::string cmd = fmt::format("/usr/bin/python3 '{}/tools/make_attention_fixtures.py' --out '{}' > /dev/null",
                                      KVLAB_SOURCE_DIR, made->path.string());
  const int rc = std::system(cmd.c_str());
  INFO(cmd);
  REQUIRE(rc == 0);
  return dir = made->path.string();
}

// A float64 dataset of the fixture's /reference group, flattened.
struct Reference {
  std::vector<double> data;
  std::vector<hsize_t> shape;
  double at(std::initializer_list<hsize_t> index) const {
    std::size_t flat = 0, k = 0;
    for (hsize_t i : index) flat = flat * shape[k++] + i;
    return data[flat];
  }
};

Reference read_reference(const std::string& path, const std::string& name) {
  io::FileHandle f(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  REQUIRE(f.valid());
  io::DatasetHandle ds(H5Dopen2(f.get(), ("/reference/" + name).c_str(), H5P_DEFAULT));
  REQUIRE(ds.valid());
  Reference r;
  r.shape = io::dataset_shape(ds.get());
  std::size_t n = 1;
  for (hsize_t s : r.shape) n *= s;
  r.data.resize(n);
  REQUIRE(H5Dread(ds.get(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, r.data.data()) >= 0);
  return r;
}

std::string fixture(const char* style) { return fixture_dir() + "/attention-" + style + ".kvdump.h5"; }

// |a − b| <= kTol·max(1, |b|): float32 tensors, references in float64.
bool close(double a, double b) { return std::abs(a - b) <= kTol * std::max(1.0, std::abs(b)); }

}  // namespace

TEST_CASE("attention fixtures: the reader resolves every attribute as the reference says",
          "[attention_fixtures]") {
  for (const char* style : {"neox", "gptj"}) {
    const DumpReader reader(fixture(style));
    const DumpInfo& info = reader.info();
    CHECK(info.describes_attention());
    CHECK_FALSE(info.rope->theta > 0);  // frequencies only
    const int windows[] = {4, 0, 1, 15};
    const double scalings[] = {1.25, 1.25, 1.0, 1.25};
    for (int l = 0; l < info.num_layers; ++l) {
      const AttentionRule r = info.attention(l);
      CHECK(r.scale_for(info.head_dim) == 0.3);
      CHECK(r.softcap == 2.0);
      CHECK(r.window == windows[l]);
      const RopeInfo rope = *info.rope_of(l);
      CHECK(rope.rotated_channels(info.head_dim) == 6);
      CHECK(rope.attention_scaling == scalings[l]);
      CHECK(rope.style == (std::string(style) == "neox" ? RopeStyle::Neox : RopeStyle::Gptj));
      CHECK(rope.inv_freq == (l == 1 ? std::vector<double>{1.7, 0.4, 0.05} : std::vector<double>{0.9, 0.23, 0.017}));
    }
  }
}

TEST_CASE("attention fixtures: RoPE undo matches NumPy to 1e-6 and redo gives the stored vectors",
          "[attention_fixtures]") {
  for (const char* style : {"neox", "gptj"}) {
    const std::string path = fixture(style);
    const DumpReader reader(path);
    const DumpInfo& info = reader.info();
    const Reference pre_k = read_reference(path, "pre_rope_keys"), pre_q = read_reference(path, "pre_rope_queries");
    double worst_undo = 0, worst_redo = 0, worst_mean = 0;
    for (int l = 0; l < info.num_layers; ++l) {
      const LayerData data = reader.read_layer(l);
      const RopeInfo rope = *info.rope_of(l);
      const auto check = [&](const std::vector<Matrix>& stored, const Reference& ref) {
        for (std::size_t h = 0; h < stored.size(); ++h) {
          Matrix x = stored[h];
          rope_rotate(x, rope, 0, /*inverse=*/true);
          for (int t = 0; t < x.rows(); ++t)
            for (int c = 0; c < x.cols(); ++c) {
              const double want = ref.at({static_cast<hsize_t>(l), h, static_cast<hsize_t>(t), static_cast<hsize_t>(c)});
              worst_undo = std::max(worst_undo, std::abs(x(t, c) - want) / std::max(1.0, std::abs(want)));
            }
          // Expected-attention's mean rotation over one position is RoPE at that position.
          for (int t = 0; t < x.rows(); ++t) {
            const MatrixD r = mean_rope_rotation(rope, info.head_dim, t, 1);
            const Eigen::VectorXd y = r * x.row(t).transpose().cast<double>();
            for (int c = 0; c < x.cols(); ++c)
              worst_mean = std::max(worst_mean, std::abs(y[c] - stored[h](t, c)) / std::max(1.0, std::abs(y[c])));
          }
          rope_rotate(x, rope, 0, /*inverse=*/false);
          worst_redo = std::max(worst_redo, static_cast<double>((x - stored[h]).cwiseAbs().maxCoeff()));
        }
      };
      check(data.keys, pre_k);
      check(data.queries, pre_q);
    }
    INFO(style << ": undo " << worst_undo << ", redo " << worst_redo << ", mean rotation " << worst_mean);
    CHECK(worst_undo <= kTol);
    CHECK(worst_redo <= kTol);
    CHECK(worst_mean <= kTol);
  }
}

TEST_CASE("attention fixtures: reference attention with scale, soft-cap and window matches NumPy",
          "[attention_fixtures]") {
  for (const char* style : {"neox", "gptj"}) {
    const std::string path = fixture(style);
    const DumpReader reader(path);
    const DumpInfo& info = reader.info();
    const Reference weights = read_reference(path, "attention_weights"), out = read_reference(path, "attention_output"),
                    logits = read_reference(path, "logits");
    const int g = info.group_size(), T = info.seq_len, d = info.head_dim;
    std::vector<int> positions(static_cast<std::size_t>(T));
    for (int t = 0; t < T; ++t) positions[static_cast<std::size_t>(t)] = t;
    for (int l = 0; l < info.num_layers; ++l) {
      const LayerData data = reader.read_layer(l);
      const AttentionRule rule = info.attention(l);
      for (int kv = 0; kv < info.num_kv_heads; ++kv) {
        const std::span<const Matrix> group(data.queries.data() + kv * g, static_cast<std::size_t>(g));
        const HeadInput in{data.keys[static_cast<std::size_t>(kv)], data.values[static_cast<std::size_t>(kv)], group};
        ReferenceChunk chunk;
        chunk.compute(in, positions, rule);
        std::vector<double> scores_want(static_cast<std::size_t>(T), 0.0);
        for (int t = 0; t < T; ++t)
          for (int j = 0; j < g; ++j) {
            const auto h = static_cast<hsize_t>(kv * g + j);
            const auto lh = static_cast<hsize_t>(l);
            const ReferenceAttention a = chunk.at(t, j);
            CHECK(a.first == std::max(0, rule.window > 0 ? t - rule.window + 1 : 0));
            for (int k = 0; k < T; ++k) {
              const double w = k < a.tokens ? a.p[k] : 0.0;
              const double want = weights.at({lh, h, static_cast<hsize_t>(t), static_cast<hsize_t>(k)});
              INFO(style << " layer " << l << " head " << h << " query " << t << " key " << k);
              CHECK(std::abs(w - want) <= kTol);
              scores_want[static_cast<std::size_t>(k)] += want;
              if (k >= a.first && k < a.tokens)  // capped logits of the visible keys
                CHECK(std::abs(a.logits[k] - logits.at({lh, h, static_cast<hsize_t>(t), static_cast<hsize_t>(k)})) <=
                      kTol * 2);
            }
            for (int c = 0; c < d; ++c)
              CHECK(close(a.o[c], out.at({lh, h, static_cast<hsize_t>(t), static_cast<hsize_t>(c)})));
          }
        // The droppers' accumulator: every query of the group over the causal prompt of T positions.
        std::vector<ConstMatrixRef> heads;
        for (const Matrix& q : group) heads.emplace_back(q);
        const std::vector<double> got = attention_scores(heads, 0, in.keys, nullptr, rule);
        // (a sum of up to T·g probabilities from float logits)
        for (int k = 0; k < T; ++k)
          CHECK(std::abs(got[static_cast<std::size_t>(k)] - scores_want[static_cast<std::size_t>(k)]) <= 5 * kTol);
      }
    }
  }
}

TEST_CASE("attention fixtures: evicting keys outside the window costs nothing, inside it their reference weight",
          "[attention_fixtures]") {
  const std::string path = fixture("neox");
  const DumpReader reader(path);
  const DumpInfo& info = reader.info();
  const Reference weights = read_reference(path, "attention_weights");
  const int l = 0, T = info.seq_len, g = info.group_size();  // layer 0: window 4
  const LayerData data = reader.read_layer(l);
  const std::span<const Matrix> group(data.queries.data(), static_cast<std::size_t>(g));
  const HeadInput in{data.keys[0], data.values[0], group};
  const std::vector<int> last{T - 1};
  ReferenceChunk chunk;
  chunk.compute(in, last, info.attention(l));
  // Raw q·k of the last query, as the compressed side hands them over (K̂ = K).
  const auto raw_logits = [&](int j) {
    std::vector<float> raw(static_cast<std::size_t>(T));
    for (int k = 0; k < T; ++k) raw[static_cast<std::size_t>(k)] = group[static_cast<std::size_t>(j)].row(T - 1).dot(in.keys.row(k));
    return raw;
  };
  AttentionScratch scratch;
  PresentMask present(static_cast<std::size_t>(T), 1);
  for (int k = 0; k < T - 4; ++k) present[static_cast<std::size_t>(k)] = 0;  // everything the window hides
  for (int j = 0; j < g; ++j) {
    const std::vector<float> raw = raw_logits(j);
    const AttentionError e = compare_attention(chunk.at(0, j), raw.data(), in.values, present.data(), chunk.scale(), scratch);
    CHECK(e.dropped_mass == 0.0);
    CHECK(e.kl <= 1e-12);
    CHECK(e.kl_rev <= 1e-12);
    CHECK(e.out_rel <= 1e-6);
  }
  present[static_cast<std::size_t>(T - 3)] = 0;  // a visible key
  const std::vector<float> raw = raw_logits(0);
  const AttentionError e = compare_attention(chunk.at(0, 0), raw.data(), in.values, present.data(), chunk.scale(), scratch);
  CHECK(std::abs(e.dropped_mass - weights.at({0, 0, static_cast<hsize_t>(T - 1), static_cast<hsize_t>(T - 3)})) <= kTol);
}

TEST_CASE("attention fixtures: a replayed dropper's dropped mass is the NumPy weight of what it evicted",
          "[attention_fixtures]") {
  const std::string path = fixture("gptj");
  const DumpReader reader(path);
  const DumpInfo& info = reader.info();
  const Reference weights = read_reference(path, "attention_weights");
  const auto h2o = Registry::global().build("h2o:heavy_tokens=2,recent_tokens=2");
  const int T = info.seq_len, P = info.prompt_len, g = info.group_size();
  for (int l = 0; l < info.num_layers; ++l) {
    const LayerData data = reader.read_layer(l);
    for (int kv = 0; kv < info.num_kv_heads; ++kv) {
      BlockContext ctx;
      ctx.layer = l;
      ctx.num_layers = info.num_layers;
      ctx.kv_head = kv;
      ctx.num_kv_heads = info.num_kv_heads;
      ctx.head_dim = info.head_dim;
      ctx.group_size = g;
      ctx.prompt_len = P;
      ctx.max_tokens = T;
      ctx.rope = info.rope_of(l);
      ctx.attention = info.attention(l);
      const std::span<const Matrix> group(data.queries.data() + kv * g, static_cast<std::size_t>(g));
      const auto& K = data.keys[static_cast<std::size_t>(kv)];
      const auto& V = data.values[static_cast<std::size_t>(kv)];
      const std::vector<int> steps = evaluation_steps(T - P, 1);
      const BlockResult r = replay_block(*h2o, ctx, BlockInput{K, V, group, P, T - P}, steps, true);
      // The same state fed by hand: which positions are absent at each step.
      auto state = h2o->new_state(ctx);
      QueryGroup q;
      for (const Matrix& m : group) q.emplace_back(m.topRows(P));
      state->prefill(K.topRows(P), V.topRows(P), q);
      REQUIRE(r.steps.size() == steps.size());
      double evicted_visible = 0;
      for (std::size_t s = 0; s < steps.size(); ++s) {
        if (steps[s] > 0) {
          const int t = P + steps[s] - 1;
          QueryGroup one;
          for (const Matrix& m : group) one.emplace_back(m.middleRows(t, 1));
          state->append(K.row(t), V.row(t), one);
        }
        const CacheView view = state->view();
        const int t = view.tokens() - 1;
        double want = 0;
        for (int j = 0; j < g; ++j)
          for (int k = 0; k <= t; ++k)
            if (!view.is_present(k))
              want += weights.at({static_cast<hsize_t>(l), static_cast<hsize_t>(kv * g + j), static_cast<hsize_t>(t),
                                  static_cast<hsize_t>(k)});
        evicted_visible += want;
        INFO("layer " << l << " kv head " << kv << " step " << steps[s]);
        CHECK(std::abs(r.steps[s].attn.dropped_mass - want) <= kTol);
      }
      if (l == 2) CHECK(evicted_visible == 0.0);  // window 1: a query sees only itself, never evicted
    }
  }
}
