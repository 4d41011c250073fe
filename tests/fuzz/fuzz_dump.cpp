// libFuzzer target: kvdump files (DumpReader, every layer, its statistics, the tokens).
// What one input does, and what counts as a finding: fuzz_targets.hpp.
// KVLAB_FUZZ_IN_PROCESS=1 turns DumpReader's child-process probe off, so
// crashes inside HDF5 reach libFuzzer too (for exploring, not for CI).
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "fuzz_targets.hpp"
#include "kvlab/io/probe_process.hpp"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* in_process = std::getenv("KVLAB_FUZZ_IN_PROCESS");
  if (in_process != nullptr && std::strcmp(in_process, "1") == 0) kvlab::io::set_probing(false);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string problem = kvlab::fuzz::run_dump_input(data, size);
  if (problem.empty()) return 0;
  std::fprintf(stderr, "kvlab fuzz finding: %s\n", problem.c_str());
  std::abort();  // libFuzzer saves the input
}
