// kvlab::FileError: problems with a file (missing, not HDF5, truncated, not a
// valid kvdump, non-finite data) are FileErrors, problems with the request
// (a spec, a layer index) are plain Errors; the job runner keeps the
// distinction in JobRecord::file_error. The Python module maps them to
// OSError and ValueError.
#include <catch2/catch.hpp>

#include <fstream>

#include "kvlab/compressors/registry.hpp"
#include "kvlab/io/dump_reader.hpp"
#include "kvlab/report/job_identity.hpp"
#include "kvlab/runner/job_runner.hpp"
#include "test_support.hpp"

using namespace kvlab;
using namespace kvlab::test;

namespace {

bool throws_file_error(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const FileError&) {
    return true;
  } catch (const Error&) {
    return false;
  }
  FAIL("no error thrown");
  return false;
}

Job job_on(const std::string& dump, const std::string& spec) {
  ReplayOptions opts;
  opts.eval_every = 0;
  const ResolvedSpec resolved = Registry::global().resolve(spec);
  return Job{dump, resolved, opts, make_identity(resolved, dump, dump, opts)};
}

}  // namespace

TEST_CASE("file problems are FileErrors, request problems are not", "[io][errors]") {
  TempDir dir("kvlab_file_errors_");
  const std::string good = write_tiny_dump(dir.path / "good.h5");
  CHECK(throws_file_error([&] { DumpReader r(dir.file("missing.h5")); }));
  std::ofstream(dir.file("text.h5")) << "not HDF5\n";
  CHECK(throws_file_error([&] { DumpReader r(dir.file("text.h5")); }));
  {
    RawFile raw(good);
    raw.remove_attr("head_dim");
  }
  CHECK(throws_file_error([&] { DumpReader r(good); }));  // not a valid kvdump

  const std::string ok = write_tiny_dump(dir.path / "ok.h5");
  const DumpReader reader(ok);
  CHECK_FALSE(throws_file_error([&] { reader.read_layer(99); }));  // the caller's index
  CHECK_FALSE(throws_file_error([&] { Registry::global().build("kivi:bitz=2"); }));
}

TEST_CASE("the job runner records whether a job failed on its file", "[runner][errors]") {
  TempDir dir("kvlab_file_errors_");
  const std::string good = write_tiny_dump(dir.path / "good.h5");
  const std::string truncated = dir.file("truncated.h5");
  fs::copy_file(good, truncated);
  fs::resize_file(truncated, fs::file_size(good) * 3 / 4);

  const std::vector<Job> jobs{job_on(good, "kivi-2bit"), job_on(dir.file("missing.h5"), "fp16"),
                              job_on(truncated, "fp16"), job_on(good, "kivi:residual=100")};
  CollectingSink sink;
  run_jobs(jobs, RunnerOptions{1}, sink);
  REQUIRE(sink.records.size() == 4);
  CHECK(sink.records[0].ok());
  CHECK_FALSE(sink.records[0].file_error);
  CHECK_FALSE(sink.records[3].ok());  // the spec's constraint, not the file
  CHECK_FALSE(sink.records[3].file_error);
  CHECK(sink.records[1].file_error);
  CHECK_THAT(sink.records[1].error, Catch::Matchers::Contains("no such file"));
  CHECK(sink.records[2].file_error);
  CHECK_THAT(sink.records[2].error, Catch::Matchers::Contains("truncated"));
}
