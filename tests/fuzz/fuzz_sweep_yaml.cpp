// libFuzzer target: sweep files (load_sweep_config, make_sweep_plan, the resolved plan).
// What one input does, and what counts as a finding: fuzz_targets.hpp.
#include <cstdio>
#include <cstdlib>

#include "fuzz_targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string problem = kvlab::fuzz::run_sweep_yaml_input(data, size);
  if (problem.empty()) return 0;
  std::fprintf(stderr, "kvlab fuzz finding: %s\n", problem.c_str());
  std::abort();  // libFuzzer saves the input
}
