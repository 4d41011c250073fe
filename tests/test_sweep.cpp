// Sweep files: grid expansion, include/override, validation messages.
#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "kvlab/core/error.hpp"
#include "kvlab/io/synth.hpp"
#include "kvlab/sweep/sweep_plan.hpp"
#include "test_support.hpp"

using namespace kvlab;
namespace fs = std::filesystem;

namespace {

fs::path temp_dir() {
  static const fs::path dir = [] {
    const fs::path d = test::process_temp_path("kvlab_test_sweep");
    fs::create_directories(d);
    test::write_tiny_dump(d / "a.h5");
    test::write_tiny_dump(d / "noq.h5", /*with_queries=*/false);
    return d;
  }();
  return dir;
}

std::string write(const std::string& name, const std::string& text) {
  const fs::path p = temp_dir() / name;
  std::ofstream(p) << text;
  return p.string();
}

}  // namespace

TEST_CASE("a list-valued parameter is a product axis, zip varies together", "[sweep]") {
  const YAML::Node entry = YAML::Load("{method: kivi, bits: [2, 4], group: [32, 64], residual: 128}");
  CHECK(expand_compressor_entry(entry, "x") ==
        std::vector<std::string>{"kivi:residual=128,bits=2,group=32", "kivi:residual=128,bits=2,group=64",
                                 "kivi:residual=128,bits=4,group=32", "kivi:residual=128,bits=4,group=64"});
  const YAML::Node zip = YAML::Load("{method: uniform, zip: {bits: [2, 4], group: [32, 64]}, axis: [token, channel]}");
  CHECK(expand_compressor_entry(zip, "x") ==
        std::vector<std::string>{"uniform:bits=2,group=32,axis=token", "uniform:bits=2,group=32,axis=channel",
                                 "uniform:bits=4,group=64,axis=token", "uniform:bits=4,group=64,axis=channel"});
  CHECK(expand_compressor_entry(YAML::Load("kivi-2bit"), "x") == std::vector<std::string>{"kivi-2bit"});
  CHECK_THROWS_WITH(expand_compressor_entry(YAML::Load("{method: uniform, zip: {bits: [2, 4], group: [32]}}"), "x"),
                    Catch::Contains("zip lists differ in length"));
}

TEST_CASE("a sweep expands to dumps x specs with duplicates removed", "[sweep]") {
  const std::string f = write("ok.yaml", R"(
name: t
dumps: [a.h5]
compressors: [fp16, kivi-2bit, {method: kivi, bits: [2, 4]}]
replay: {eval_every: 4, layers: [1]}
)");
  const SweepPlan plan = make_sweep_plan(load_sweep_config(f));
  REQUIRE(plan.jobs.size() == 3);  // kivi-2bit == kivi:bits=2
  CHECK(plan.jobs[2].job.spec.canonical == "kivi:bits=4,group=32,residual=128");
  CHECK(plan.config.replay.eval_every == 4);
  CHECK(plan.config.replay.layers == std::vector<int>{1});
  CHECK(plan.out_dir == "results/t");
  CHECK(plan.param_columns == std::vector<std::string>{"bits", "group", "residual", "rotation"});
}

TEST_CASE("include pulls in shared settings and fields here override them", "[sweep]") {
  write("base.yaml", "name: base\ndumps: [a.h5]\ncompressors: [fp16]\nreplay: {eval_every: 8, max_steps: 20}\nseed: 3\n");
  const std::string f = write("child.yaml", "include: base.yaml\nname: child\nreplay: {eval_every: 2}\n");
  const SweepConfig c = load_sweep_config(f);
  CHECK(c.name == "child");
  CHECK(c.replay.eval_every == 2);
  CHECK(c.replay.max_steps == 20);  // maps merge key by key
  CHECK(c.replay.seed == 3);
  CHECK(c.dumps.size() == 1);
}

TEST_CASE("sweep validation: one clear message per problem", "[sweep]") {
  auto err = [](const std::string& name, const std::string& text) {
    const std::string f = write(name, text);
    try {
      make_sweep_plan(load_sweep_config(f));
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK_THAT(err("k.yaml", "name: t\ndumps: [a.h5]\ncompressors: [fp16]\nrepaly: {}\n"),
             Catch::Contains("k.yaml") && Catch::Contains("unknown key 'repaly'") && Catch::Contains("did you mean 'replay'"));
  CHECK_THAT(err("k2.yaml", "name: t\ndumps: [a.h5]\ncompressors: [fp16]\nreplay: {eval_evry: 2}\n"),
             Catch::Contains("unknown key 'replay.eval_evry'") && Catch::Contains("eval_every"));
  CHECK_THAT(err("t.yaml", "name: t\ndumps: [a.h5]\ncompressors: [fp16]\nthreads: many\n"),
             Catch::Contains("'threads' must be an integer, got 'many'"));
  CHECK_THAT(err("r.yaml", "name: t\ndumps: [a.h5]\ncompressors: [fp16]\nreplay: {eval_every: -3}\n"),
             Catch::Contains("'replay.eval_every' = -3 is out of range"));
  CHECK_THAT(err("m.yaml", "name: t\ndumps: [missing*.h5]\ncompressors: [fp16]\n"),
             Catch::Contains("matches no file"));
  CHECK_THAT(err("c.yaml", "name: t\ndumps: [a.h5]\ncompressors: [kivvi]\n"),
             Catch::Contains("compressors[0]") && Catch::Contains("did you mean 'kivi'"));
  CHECK_THAT(err("p.yaml", "name: t\ndumps: [a.h5]\ncompressors: [{method: kivi, bitz: 2}]\n"),
             Catch::Contains("unknown parameter 'bitz'"));
  CHECK_THAT(err("q.yaml", "name: t\ndumps: [noq.h5]\ncompressors: [fp16]\n"),
             Catch::Contains("noq.h5") && Catch::Contains("need recorded queries"));
  CHECK(err("q2.yaml", "name: t\ndumps: [noq.h5]\ncompressors: [fp16]\nmetrics: [reconstruction]\n") == "no error");
  CHECK_THAT(err("l.yaml", "name: t\ndumps: [a.h5]\ncompressors: [fp16]\nreplay: {layers: [5]}\n"),
             Catch::Contains("layer 5 is out of range"));
  CHECK_THAT(err("v.yaml", "name: t\nversion: 2\ndumps: [a.h5]\ncompressors: [fp16]\n"),
             Catch::Contains("'version' = 2 is out of range"));
  CHECK_THAT(err("n.yaml", "dumps: [a.h5]\ncompressors: [fp16]\n"), Catch::Contains("missing required key 'name'"));
  CHECK_THAT(err("y.yaml", "name: [unclosed\n"), Catch::Contains("invalid YAML"));
}
