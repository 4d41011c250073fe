// The crash-safety rules of ResultsWriter: a job is finished iff its summary
// row exists; resuming drops partial rows of unfinished jobs and torn lines.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <set>
#include <fstream>
#include <sstream>

#include "kvlab/compressors/registry.hpp"
#include "kvlab/report/results_writer.hpp"
#include "test_support.hpp"

using namespace kvlab;
namespace fs = std::filesystem;

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

JobIdentity identity(const std::string& id) {
  JobIdentity j;
  j.job_id = id;
  j.dump = "d.h5";
  j.method = "fp16";
  j.family = "baseline";
  j.spec = "fp16";
  return j;
}

JobRecord record(const std::string& id, const std::string& error = "") {
  JobRecord rec;
  rec.identity = identity(id);
  rec.error = error;
  BlockResult b;
  b.tokens = 4;
  b.head_dim = 2;
  b.bits.fp16_buffer = 16 * 2 * 4 * 2;
  b.steps.push_back(StepPoint{0, 3, 4, {}, 0, {}, {}, b.bits.total()});
  rec.result.blocks.push_back(b);
  rec.summary = summarize(rec.result);
  rec.steps = summarize_steps(rec.result);
  return rec;
}

using Mode = ResultsWriter::Mode;

}  // namespace

TEST_CASE("results writer: resume keeps finished jobs and drops partial rows", "[results]") {
  const test::TempDir dir("kvlab_results_");
  const std::string out = (dir.path / "r").string();
  {
    ResultsWriter w(out, {}, Mode::Fresh);
    w.write(record("a"));
    w.write(record("b"));
  }
  const std::string summary_done = slurp(fs::path(out) / "summary.csv");
  const std::string layers_done = slurp(fs::path(out) / "layers.csv");
  // A crash while job "c" was being written: its layer rows are there, its
  // summary row is not, and the steps file ends in a torn line.
  {
    std::ofstream(fs::path(out) / "layers.csv", std::ios::app) << "c,fp16,fp16,d.h5,0,0,K,0,0,0,0,,,\n";
    std::ofstream(fs::path(out) / "steps.csv", std::ios::app) << "c,fp16,fp16,d.h5,3,0,4,0.1";
  }
  ResultsWriter resumed(out, {}, Mode::Resume);
  CHECK(resumed.finished("a"));
  CHECK(resumed.finished("b"));
  CHECK_FALSE(resumed.finished("c"));
  CHECK(slurp(fs::path(out) / "summary.csv") == summary_done);
  CHECK(slurp(fs::path(out) / "layers.csv") == layers_done);
  const std::string steps = slurp(fs::path(out) / "steps.csv");
  CHECK(steps.find("\nc,") == std::string::npos);
  CHECK(steps.back() == '\n');

  // A failed job is not finished: resume runs it again and drops its row.
  resumed.write(record("c", "boom"));
  CHECK(slurp(fs::path(out) / "summary.csv").find("c,failed,boom,") != std::string::npos);
  ResultsWriter again(out, {}, Mode::Resume);
  CHECK_FALSE(again.finished("c"));
  CHECK(slurp(fs::path(out) / "summary.csv") == summary_done);
}

TEST_CASE("results writer: refuses to resume into a folder with other columns", "[results]") {
  const test::TempDir dir("kvlab_results_");
  const std::string out = (dir.path / "r").string();
  { ResultsWriter w(out, TableLayout{{"bits"}}, Mode::Fresh); }
  CHECK_THROWS_WITH(ResultsWriter(out, TableLayout{{"rank"}}, Mode::Resume), Catch::Contains("different columns"));
}

TEST_CASE("results writer: never replaces a results file unless told to", "[results]") {
  const test::TempDir dir("kvlab_results_");
  const std::string out = (dir.path / "r").string();
  { ResultsWriter w(out, {}, Mode::Fresh); w.write(record("a")); }
  // Any one results file is enough to refuse, not only summary.csv.
  fs::remove(fs::path(out) / "summary.csv");
  const std::string layers = slurp(fs::path(out) / "layers.csv");
  CHECK_THROWS_WITH(ResultsWriter(out, {}, Mode::Fresh), Catch::Contains("results already exist (layers.csv)") &&
                                                              Catch::Contains("--overwrite"));
  CHECK(slurp(fs::path(out) / "layers.csv") == layers);
  { ResultsWriter w(out, {}, Mode::Overwrite); }
  CHECK(slurp(fs::path(out) / "layers.csv").find("\na,") == std::string::npos);
}

TEST_CASE("every results file has unique column names, with parameters and a model in the loop", "[results]") {
  const TableLayout layout{{"bits", "decode_steps", "rank", "steps"}, 3};
  for (const ResultTable& t : result_tables()) {
    INFO(t.file);
    const auto names = t.header(layout);
    std::set<std::string> unique(names.begin(), names.end());
    CHECK(unique.size() == names.size());
  }
  // The model's step count has its own name: a sweep with model: once wrote two `decode_steps`.
  const auto summary = result_table("summary.csv").header(layout);
  CHECK(std::count(summary.begin(), summary.end(), "decode_steps") == 1);
  CHECK(std::count(summary.begin(), summary.end(), "decode_loop_steps") == 1);
  // The columns the model in the loop added later (shared-context steps, K/V check; seed per decode row).
  for (const char* name : {"decode_shared_steps", "decode_kv_rel_max", "decode_first_divergence", "decode_bits_per_element"})
    CHECK(std::count(summary.begin(), summary.end(), name) == 1);
  const auto decode = result_table("decode_steps.csv").header(layout);
  for (const char* name : {"seed", "shared_context", "step", "attn_rel_layer2"})
    CHECK(std::count(decode.begin(), decode.end(), name) == 1);
}

TEST_CASE("rows have as many cells as the header, for ok and failed jobs", "[results]") {
  const TableLayout layout{{"bits"}, 2};
  JobRecord ok = record("a");
  ok.decode = DecodeResult{};
  ok.decode->steps.resize(3);
  for (auto& s : ok.decode->steps) s.attn_rel = {0.1, 0.2};
  for (const JobRecord& r : {ok, record("b", "broken")}) {
    for (const ResultTable& t : result_tables()) {
      INFO(t.file << " " << r.identity.job_id);
      const std::size_t width = t.header(layout).size();
      for (const auto& row : table_rows(t, layout, r)) CHECK(row.size() == width);
    }
  }
  CHECK(table_rows(result_table("decode_steps.csv"), layout, ok).size() == 3);
  CHECK(table_rows(result_table("layers.csv"), layout, record("b", "broken")).empty());
}
