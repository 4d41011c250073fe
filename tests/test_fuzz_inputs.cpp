// Replays the fuzz corpus (tests/fuzz/corpus/<target>/) and every past
// finding (tests/fuzz/regressions/<target>/) through what the libFuzzer
// targets do (tests/fuzz/fuzz_targets.hpp), in the normal test suite: each
// must succeed or fail with a proper one-line error.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

#include "fuzz/fuzz_targets.hpp"

namespace fs = std::filesystem;

namespace {

using Runner = std::string (*)(const std::uint8_t*, std::size_t);

// Runs every file of <source>/tests/fuzz/{corpus,regressions}/<target>; returns how many.
int replay(const std::string& target, Runner run) {
  int count = 0;
  for (const char* kind : {"corpus", "regressions"}) {
    const fs::path dir = fs::path(KVLAB_SOURCE_DIR) / "tests" / "fuzz" / kind / target;
    if (!fs::is_directory(dir)) continue;
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(dir))
      if (entry.is_regular_file()) files.push_back(entry.path());
    std::sort(files.begin(), files.end());
    for (const fs::path& file : files) {
      std::ifstream in(file, std::ios::binary);
      const std::vector<char> bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
      INFO(file.string());
      CHECK(run(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()).empty());
      ++count;
    }
  }
  return count;
}

}  // namespace

TEST_CASE("fuzz corpus and findings: spec strings", "[fuzz]") {
  CHECK(replay("spec", kvlab::fuzz::run_spec_input) > 10);
}

TEST_CASE("fuzz corpus and findings: sweep files", "[fuzz]") {
  CHECK(replay("sweep_yaml", kvlab::fuzz::run_sweep_yaml_input) >= 4);
}

TEST_CASE("fuzz corpus and findings: dumps", "[fuzz]") {
  CHECK(replay("dump", kvlab::fuzz::run_dump_input) >= 4);
}
