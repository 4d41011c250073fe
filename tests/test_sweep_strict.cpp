// Strict sweep files: duplicate keys, unsafe names, aliases and exploding
// products are refused with the file and the line or entry at fault.
#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>

#include "kvlab/core/error.hpp"
#include "kvlab/sweep/sweep_plan.hpp"
#include "test_support.hpp"

using namespace kvlab;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

namespace {

fs::path strict_dir() {
  static const fs::path dir = [] {
    const fs::path d = test::process_temp_path("kvlab_test_sweep_strict");
    fs::create_directories(d);
    test::write_tiny_dump(d / "a.h5");
    return d;
  }();
  return dir;
}

std::string write(const std::string& name, const std::string& text) {
  const fs::path p = strict_dir() / name;
  std::ofstream(p) << text;
  return p.string();
}

// "[v0, v1, ..., v{n-1}]"
std::string list_of(int n, int first = 1) {
  std::string s = "[";
  for (int i = 0; i < n; ++i) s += (i ? ", " : "") + std::to_string(first + i);
  return s + "]";
}

}  // namespace

TEST_CASE("duplicate keys are refused with both lines", "[sweep][hostile]") {
  const std::string top = write("dup_top.yaml", "name: a\ndumps: [a.h5]\ncompressors: [fp16]\nname: b\n");
  REQUIRE_THROWS_WITH(load_sweep_config(top),
                      Contains(top) && Contains("line 4: duplicate key 'name' (first at line 1)"));
  const std::string nested =
      write("dup_nested.yaml", "name: a\ndumps: [a.h5]\ncompressors:\n  - {method: kivi, bits: 2, bits: 4}\n");
  REQUIRE_THROWS_WITH(load_sweep_config(nested), Contains(nested) && Contains("line 4: duplicate key 'bits'"));
  const std::string replay =
      write("dup_replay.yaml", "name: a\ndumps: [a.h5]\ncompressors: [fp16]\nreplay:\n  eval_every: 2\n"
                               "  layers: [0]\n  eval_every: 4\n");
  REQUIRE_THROWS_WITH(load_sweep_config(replay),
                      Contains(replay) && Contains("line 7: duplicate key 'eval_every' (first at line 5)"));
  // The same key in two different maps is fine.
  const std::string ok = write("dup_ok.yaml", "name: a\ndumps: [a.h5]\ncompressors:\n  - {method: kivi, bits: 2}\n"
                                              "  - {method: uniform, bits: 4}\n");
  CHECK(make_sweep_plan(load_sweep_config(ok)).jobs.size() == 2);
}

TEST_CASE("YAML that is not a plain tree is refused", "[sweep][hostile]") {
  const std::string alias =
      write("alias.yaml", "name: a\ndumps: [a.h5]\nbase: &b {method: kivi}\ncompressors: [*b]\n");
  REQUIRE_THROWS_WITH(load_sweep_config(alias), Contains(alias) && Contains("line 4: YAML aliases"));
  const std::string docs = write("docs.yaml", "name: a\ndumps: [a.h5]\ncompressors: [fp16]\n---\nname: b\n");
  REQUIRE_THROWS_WITH(load_sweep_config(docs), Contains(docs) && Contains("a second YAML document"));
  const std::string key = write("key.yaml", "name: a\ndumps: [a.h5]\ncompressors: [fp16]\n[x, y]: 1\n");
  REQUIRE_THROWS_WITH(load_sweep_config(key), Contains(key) && Contains("line 4: a list as a key"));
  const std::string null_key = write("null_key.yaml", "name: a\n~: 1\n");
  REQUIRE_THROWS_WITH(load_sweep_config(null_key), Contains(null_key) && Contains("line 2: an empty (null) key"));
  const std::string include = write("include_dev.yaml", "include: /dev/zero\nname: a\n");
  REQUIRE_THROWS_WITH(load_sweep_config(include), Contains("/dev/zero: not a regular file"));
}

TEST_CASE("the sweep name is a safe folder name", "[sweep][hostile]") {
  for (const std::string& bad : {std::string("'..'"), std::string("'.'"), std::string("a/b"), std::string("'with space'"),
                                 std::string("'~'"), std::string("''"), std::string("\"\\u00e9t\u00e9\"")}) {
    const std::string f = write("name.yaml", "name: " + bad + "\ndumps: [a.h5]\ncompressors: [fp16]\n");
    INFO(bad);
    REQUIRE_THROWS_WITH(load_sweep_config(f), Contains(f) && Contains("'name'") && Contains("A-Z a-z 0-9 . _ -"));
  }
  // A newline (any control character) is refused by the strict reading, on one line.
  const std::string newline = write("name_nl.yaml", "name: \"a\\nb\"\ndumps: [a.h5]\ncompressors: [fp16]\n");
  REQUIRE_THROWS_WITH(load_sweep_config(newline), Contains(newline) && Contains("line 1: control character in \"a\\nb\"") &&
                                                      !Contains("a\nb"));
  const std::string ok = write("name_ok.yaml", "name: gear-2bit_v1.2\ndumps: [a.h5]\ncompressors: [fp16]\n");
  CHECK(load_sweep_config(ok).name == "gear-2bit_v1.2");
}

TEST_CASE("a Cartesian product beyond max_jobs is refused before it is built", "[sweep][hostile]") {
  // 200 x 200 x 200 = 8M specs: the planner used to exhaust memory building them.
  const std::string huge = write("huge.yaml", "name: a\ndumps: [a.h5]\ncompressors:\n  - {method: kivi, bits: " +
                                                  list_of(200) + ", group: " + list_of(200) +
                                                  ", residual: " + list_of(200) + "}\n");
  const auto start = std::chrono::steady_clock::now();
  REQUIRE_THROWS_WITH(make_sweep_plan(load_sweep_config(huge)),
                      Contains(huge) && Contains("compressors[0]") && Contains("expand to 8000000 specs") &&
                          Contains("bits: 200 x group: 200 x residual: 200") && Contains("max_jobs = 100000"));
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(5));

  // zip axes count once, and max_jobs overrides the cap.
  const std::string grid = "  - {method: kivi, bits: [2, 3, 4], zip: {group: [32, 64], residual: [128, 256]}}\n";
  const std::string capped = write("capped.yaml", "name: a\nmax_jobs: 5\ndumps: [a.h5]\ncompressors:\n" + grid);
  REQUIRE_THROWS_WITH(make_sweep_plan(load_sweep_config(capped)),
                      Contains("expand to 6 specs (bits: 3 x zip(group, residual): 2), more than max_jobs = 5"));
  const std::string raised = write("raised.yaml", "name: a\nmax_jobs: 6\ndumps: [a.h5]\ncompressors:\n" + grid);
  CHECK(make_sweep_plan(load_sweep_config(raised)).jobs.size() == 6);
  CHECK_THROWS_WITH(expand_compressor_entry(YAML::Load("{method: kivi, bits: [2, 3, 4]}"), "x", 2),
                    Contains("x: the lists of kivi expand to 3 specs (bits: 3), more than max_jobs = 2"));
}
