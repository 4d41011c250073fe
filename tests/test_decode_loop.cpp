// Model in the loop, beyond the forward itself: the shared reference run, the
// K/V check against a dump (relative norm per layer, fail fast), free-mode
// metrics up to the first divergence, the model's vocabulary and the 95 %
// interval used to summarise several dumps.
#include <catch2/catch.hpp>
#include <hdf5.h>

#include <cmath>

#include "kvlab/compressors/registry.hpp"
#include "kvlab/core/interval.hpp"
#include "kvlab/core/rng.hpp"
#include "kvlab/io/dump_reader.hpp"
#include "kvlab/io/dump_writer.hpp"
#include "kvlab/io/hdf5_errors.hpp"
#include "kvlab/model/decode_compare.hpp"
#include "kvlab/model/llama_forward.hpp"
#include "kvlab/model/model_file.hpp"
#include "test_support.hpp"

using namespace kvlab;
using test::TempDir;

namespace {

ModelConfig loop_config() {
  ModelConfig c;
  c.model = "loop-test";
  c.num_layers = 2;
  c.hidden_size = 32;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 16;
  c.intermediate_size = 48;
  c.vocab_size = 50;
  c.rope_theta = 10000.0;
  c.rms_norm_eps = 1e-5;
  return c;
}

std::vector<std::int64_t> tokens_of(int n, std::uint64_t seed) {
  Rng rng(seed);
  std::vector<std::int64_t> t(static_cast<std::size_t>(n));
  for (auto& x : t) x = static_cast<std::int64_t>(rng.below(50));
  return t;
}

// A dump of the model's own keys/values over `tokens` (teacher-forced), with
// `noise`·N(0,1)·|x| added from position `from` on: what a GPU recording
// (noise ~1e-4) or a recording of something else (noise ~1) looks like.
void write_own_dump(const ModelWeights& w, const std::vector<std::int64_t>& tokens, int prompt, double noise,
                    int from, const std::string& path) {
  const ModelConfig& c = w.config;
  const auto fp16 = Registry::global().build("fp16");
  ForwardOptions fo;
  fo.max_tokens = static_cast<int>(tokens.size());
  LlamaForward f(w, *fp16, fo);
  f.prefill(tokens);
  DumpInfo info;
  info.num_layers = c.num_layers;
  info.num_heads = c.num_heads;
  info.num_kv_heads = c.num_kv_heads;
  info.head_dim = c.head_dim;
  info.seq_len = static_cast<int>(tokens.size());
  info.prompt_len = prompt;
  info.model = c.model;
  DumpWriter out(path, info, DumpWriteOptions{false});
  Rng rng(99);
  for (int l = 0; l < c.num_layers; ++l) {
    LayerData d;
    d.layer = l;
    for (int j = 0; j < c.num_kv_heads; ++j) {
      const CacheView v = f.state(l, j).view();
      Matrix k = v.keys, val = v.values;
      for (Matrix* m : {&k, &val})
        for (int t = from; t < m->rows(); ++t)
          for (int x = 0; x < m->cols(); ++x)
            (*m)(t, x) += static_cast<float>(noise * rng.normal() * std::abs((*m)(t, x)));
      d.keys.push_back(k);
      d.values.push_back(val);
    }
    out.write_layer(d);
  }
  out.write_tokens(tokens);
  out.close();
}

}  // namespace

TEST_CASE("one reference run serves every compressor and seed exactly as separate runs", "[model][loop]") {
  const ModelWeights w = random_model(loop_config(), 5);
  const auto tokens = tokens_of(40, 6);
  for (bool free : {false, true}) {
    DecodeOptions o;
    o.prompt_len = 12;
    o.free_running = free;
    o.steps = free ? 24 : -1;
    const ReferenceRun ref = run_reference(w, tokens, o);
    for (const char* spec : {"kivi:bits=2,group=8,residual=8", "gear:bits=2,group=8,buffer=8,rank=2"})
      for (std::uint64_t seed : {0u, 3u}) {
        INFO(spec << " seed " << seed << " free " << free);
        const auto comp = Registry::global().build(spec);
        o.seed = seed;
        const DecodeResult shared = compare_to_reference(w, ref, *comp, o);
        const DecodeResult alone = decode_compare(w, tokens, *comp, o);
        REQUIRE(shared.steps.size() == alone.steps.size());
        for (std::size_t s = 0; s < shared.steps.size(); ++s) {
          CHECK(shared.steps[s].kl == alone.steps[s].kl);
          CHECK(shared.steps[s].token_comp == alone.steps[s].token_comp);
          CHECK(shared.steps[s].attn_rel == alone.steps[s].attn_rel);
        }
        CHECK(shared.seed == seed);
        CHECK(shared.mean_kl == alone.mean_kl);
      }
  }
}

TEST_CASE("free mode: summary means stop at the first divergence", "[model][loop]") {
  const ModelWeights w = random_model(loop_config(), 7);
  const auto tokens = tokens_of(16, 8);
  const auto comp = Registry::global().build("uniform:bits=2,group=16,axis=token");
  DecodeOptions o;
  o.prompt_len = 16;
  o.free_running = true;
  o.steps = 48;
  const DecodeResult r = decode_compare(w, tokens, *comp, o);
  REQUIRE(r.first_divergence > 0);  // step 0 feeds the prompt's argmax, shared by construction
  CHECK(r.shared_steps == r.first_divergence);
  CHECK(r.steps_to_divergence() == r.first_divergence);
  double kl = 0.0, all = 0.0, bits = 0.0;
  int agree = 0;
  for (const DecodeStep& s : r.steps) {
    bits += 16.0 / s.compression_ratio;  // the size is averaged over every step, diverged or not
    CHECK(s.shared_context == (s.step < r.first_divergence));
    if (s.shared_context) {
      kl += s.kl;
      agree += s.top1_ref == s.top1_comp;
    }
    all += s.kl;
  }
  CHECK(r.mean_kl == Approx(kl / r.first_divergence).epsilon(1e-12));
  CHECK(r.mean_bits_per_element == Approx(bits / static_cast<double>(r.steps.size())).epsilon(1e-12));
  CHECK(r.mean_bits_per_element < 16.0 / 3);
  CHECK(r.top1_agreement == Approx(static_cast<double>(agree) / r.first_divergence));
  // The step before the divergence is where the argmaxes parted.
  const DecodeStep& last = r.steps[static_cast<std::size_t>(r.first_divergence - 1)];
  CHECK(last.top1_ref != last.top1_comp);
  // After it the contexts differ and the KL is much larger: it must not enter the mean.
  CHECK(all / static_cast<double>(r.steps.size()) > r.mean_kl);
}

TEST_CASE("K/V check: relative norm per layer, float16-level noise passes, a mismatch fails fast", "[model][loop]") {
  TempDir dir("kvlab_test_loop_");
  const ModelWeights w = random_model(loop_config(), 11);
  const auto tokens = tokens_of(40, 12);
  DecodeOptions o;
  o.prompt_len = 10;
  const auto fp16 = Registry::global().build("fp16");

  write_own_dump(w, tokens, 10, 3e-4, 0, dir.file("gpu.h5"));
  {
    const DumpReader dump(dir.file("gpu.h5"));
    const DecodeResult r = decode_compare(w, tokens, *fp16, o, &dump);
    REQUIRE(r.kv_check.done);
    CHECK(r.kv_check.positions == 40);
    CHECK(r.kv_check.max_rel > 1e-4);  // the noise is seen ...
    CHECK(r.kv_check.max_rel < 1e-3);  // ... and measured as a relative norm
    CHECK(r.kv_check.ok());
    CHECK(r.kv_check.key_rel.size() == 2);
    // A tolerance below the noise fails, naming the layer, tensor and settings.
    CHECK_THROWS_WITH(decode_compare(w, tokens, *fp16, o, &dump, KvCheckOptions{true, 1e-5}),
                      Catch::Contains("differ from the dump: relative norm") && Catch::Contains("--kv-rtol") &&
                          Catch::Contains("over positions [0, 10)"));
    // Off: no check.
    CHECK_FALSE(decode_compare(w, tokens, *fp16, o, &dump, KvCheckOptions{false, 1e-5}).kv_check.done);
  }
  // Another model's dump fails right after the prompt, before the decode steps run.
  const ModelWeights other = random_model(loop_config(), 12);
  write_own_dump(other, tokens, 10, 0.0, 0, dir.file("other.h5"));
  {
    const DumpReader dump(dir.file("other.h5"));
    CHECK_THROWS_WITH(run_reference(w, tokens, o, &dump), Catch::Contains("over positions [0, 10)"));
  }
  // A dump that goes wrong only later is caught at a later checkpoint.
  write_own_dump(w, tokens, 10, 1.0, 20, dir.file("late.h5"));
  {
    const DumpReader dump(dir.file("late.h5"));
    CHECK_THROWS_WITH(run_reference(w, tokens, o, &dump), Catch::Contains("over positions [0, 40)"));
  }
}

TEST_CASE("vocabulary: bytes and table, round trip, printable text, errors", "[model][loop]") {
  TempDir dir("kvlab_test_vocab_");
  ModelWeights w = random_model(loop_config(), 13);
  CHECK(Vocabulary::bytes().decode(std::vector<std::int64_t>{72, 105, 300}) == "Hi<300>");
  std::vector<std::int64_t> offsets{0};
  std::string data;
  for (int i = 0; i < 50; ++i) {
    data += i == 7 ? std::string("\n") : fmt::format("t{} ", i);
    offsets.push_back(static_cast<std::int64_t>(data.size()));
  }
  w.vocab = Vocabulary::table(offsets, data);
  write_model(w, dir.file("v.h5"));
  const ModelWeights back = load_model(dir.file("v.h5"));
  REQUIRE(back.vocab.kind() == Vocabulary::Kind::Table);
  CHECK(back.vocab.decode(std::vector<std::int64_t>{3, 7, 49}) == "t3 \nt49 ");
  CHECK(printable(back.vocab.decode(std::vector<std::int64_t>{3, 7, 49})) == "t3 ⏎t49 ");
  // Invalid UTF-8 is escaped; a character split over two byte tokens prints whole when joined.
  CHECK(printable("a\xC3") == "a\\xC3");
  CHECK(printable("\xC3\xA9\t") == "é→");
  CHECK(printable_width("é→x") == 3);
  CHECK_THROWS_WITH(Vocabulary::table({0, 3, 2}, "abc"), Catch::Contains("offsets decrease at index 2"));
  // A table of the wrong length is an error naming the dataset.
  ModelWeights bad = w;
  bad.vocab = Vocabulary::table({0, 1, 2}, "ab");
  write_model(bad, dir.file("bad.h5"));
  CHECK_THROWS_WITH(load_model(dir.file("bad.h5")),
                    Catch::Contains("bad.h5: /vocab/offsets: expected shape [51] [vocab_size + 1], found [3]"));
  // No vocabulary: ids only.
  ModelWeights none = w;
  none.vocab = Vocabulary{};
  write_model(none, dir.file("none.h5"));
  CHECK_FALSE(load_model(dir.file("none.h5")).vocab.has_text());
}

TEST_CASE("95 % interval: Student t against known quantiles and a worked sample", "[loop]") {
  CHECK(student_t975(1) == Approx(12.7062047362).epsilon(1e-8));
  CHECK(student_t975(4) == Approx(2.7764451052).epsilon(1e-8));
  CHECK(student_t975(30) == Approx(2.0422724563).epsilon(1e-8));
  CHECK(student_t975(60) == Approx(2.0002978).epsilon(1e-5));   // scipy.stats.t.ppf(0.975, 60)
  CHECK(student_t975(1000) == Approx(1.9623391).epsilon(1e-5)); // scipy.stats.t.ppf(0.975, 1000)
  const std::vector<double> x{1.0, 2.0, 4.0, NAN, 7.0};
  const MeanInterval m = mean_interval95(x);
  CHECK(m.n == 4);
  CHECK(m.mean == Approx(3.5));
  CHECK(m.sd == Approx(std::sqrt(7.0)));  // Σ(x − 3.5)² = 21, / 3
  CHECK(m.half_width == Approx(3.182446305 * std::sqrt(7.0) / 2.0));
  CHECK(std::isnan(mean_interval95(std::vector<double>{2.0}).half_width));
  CHECK(mean_interval95(std::vector<double>{}).n == 0);
}
