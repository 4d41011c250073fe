// The crash-safety rules of ResultsWriter: a job is finished iff its summary
// row exists; resuming drops partial rows of unfinished jobs and torn lines.
#include <catch2/catch.hpp>

#include <filesystem>
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

JobResult one_block_job() {
  JobResult r;
  BlockResult b;
  b.tokens = 4;
  b.head_dim = 2;
  b.bits.fp16_buffer = 16 * 2 * 4 * 2;
  b.steps.push_back(StepPoint{0, 3, 4, {}, 0, {}, {}, b.bits.total()});
  r.blocks.push_back(b);
  return r;
}

}  // namespace

TEST_CASE("results writer: resume keeps finished jobs and drops partial rows", "[results]") {
  const test::TempDir dir("kvlab_results_");
  const std::string out = (dir.path / "r").string();
  const JobResult job = one_block_job();
  {
    ResultsWriter w(out, {}, false);
    w.write_job(identity("a"), job, summarize(job), 0.1, 1);
    w.write_job(identity("b"), job, summarize(job), 0.1, 1);
  }
  const std::string summary_done = slurp(fs::path(out) / "summary.csv");
  const std::string layers_done = slurp(fs::path(out) / "layers.csv");
  // A crash while job "c" was being written: its layer rows are there, its
  // summary row is not, and the steps file ends in a torn line.
  {
    std::ofstream(fs::path(out) / "layers.csv", std::ios::app) << "c,fp16,fp16,d.h5,0,0,K,0,0,0,0,,,\n";
    std::ofstream(fs::path(out) / "steps.csv", std::ios::app) << "c,fp16,fp16,d.h5,3,0,4,0.1";
  }
  ResultsWriter resumed(out, {}, true);
  CHECK(resumed.finished("a"));
  CHECK(resumed.finished("b"));
  CHECK_FALSE(resumed.finished("c"));
  CHECK(slurp(fs::path(out) / "summary.csv") == summary_done);
  CHECK(slurp(fs::path(out) / "layers.csv") == layers_done);
  const std::string steps = slurp(fs::path(out) / "steps.csv");
  CHECK(steps.find("\nc,") == std::string::npos);
  CHECK(steps.back() == '\n');

  // A failed job is not finished: resume runs it again and drops its row.
  resumed.write_failed(identity("c"), "boom");
  ResultsWriter again(out, {}, true);
  CHECK_FALSE(again.finished("c"));
  CHECK(slurp(fs::path(out) / "summary.csv") == summary_done);
}

TEST_CASE("results writer: refuses to resume into a folder with other columns", "[results]") {
  const test::TempDir dir("kvlab_results_");
  const std::string out = (dir.path / "r").string();
  { ResultsWriter w(out, {"bits"}, false); }
  CHECK_THROWS_WITH(ResultsWriter(out, {"rank"}, true), Catch::Contains("different columns"));
}
