#pragma once
// What each libFuzzer target does with one input, shared by the targets
// (tests/fuzz/fuzz_*.cpp) and by the regression test that replays the corpus
// and every past finding in the normal test suite (tests/test_fuzz_inputs.cpp).
//
// An input may succeed or throw a kvlab::Error; the error must be one
// non-empty line and, for a dump, name the file. Each run_* returns "" or a
// description of what broke that rule. A crash, a sanitizer report or any
// other exception escapes: libFuzzer reports it, Catch2 fails the test.
#include <stdlib.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "kvlab/compressors/params.hpp"
#include "kvlab/compressors/registry.hpp"
#include "kvlab/core/error.hpp"
#include "kvlab/io/dump_reader.hpp"
#include "kvlab/io/dump_stats.hpp"
#include "kvlab/io/hdf5_errors.hpp"
#include "kvlab/io/synth.hpp"
#include "kvlab/sweep/sweep_plan.hpp"

namespace kvlab::fuzz {

// A fresh directory under $TMPDIR for this process, removed at exit, holding
// a tiny dump a.h5 and an includable base.yaml for the sweep target.
inline const std::filesystem::path& scratch_dir() {
  static const std::filesystem::path dir = [] {
    std::string pattern = (std::filesystem::temp_directory_path() / "kvlab_fuzz_XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) std::abort();
    const std::filesystem::path d(pattern);
    io::silence_hdf5_errors();
    SynthOptions o;
    o.num_layers = 2;
    o.num_heads = 2;
    o.num_kv_heads = 1;
    o.head_dim = 8;
    o.seq_len = 16;
    o.prompt_len = 8;
    write_synth_dump((d / "a.h5").string(), o, 1);
    std::ofstream(d / "base.yaml") << "name: base\ndumps: [a.h5]\ncompressors: [fp16]\nreplay: {eval_every: 4}\n";
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(scratch_dir(), ec);
    });
    return d;
  }();
  return dir;
}

inline std::string write_input(const std::string& name, const std::uint8_t* data, std::size_t size) {
  const std::string path = (scratch_dir() / name).string();
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  return path;
}

// "" when `what` is one non-empty line naming `must_name` (if given).
inline std::string message_problem(std::string_view what, std::string_view must_name = {}) {
  if (what.empty()) return "empty error message";
  if (what.find_first_of("\n\r") != std::string_view::npos)
    return "error message of several lines: " + std::string(what);
  if (!must_name.empty() && what.find(must_name) == std::string_view::npos)
    return "error message does not name " + std::string(must_name) + ": " + std::string(what);
  return "";
}

// Compressor spec strings: parse_spec_text, Registry::resolve and build.
inline std::string run_spec_input(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    (void)format_spec_text(parse_spec_text(text));
  } catch (const Error& e) {
    if (auto p = message_problem(e.what()); !p.empty()) return p;
  }
  try {
    const Registry& registry = Registry::global();
    const ResolvedSpec resolved = registry.resolve(text);
    (void)registry.build(resolved);
    (void)registry.resolve(resolved.canonical);  // the canonical text resolves again
  } catch (const Error& e) {
    return message_problem(e.what());
  }
  return "";
}

// Sweep files: written to <scratch>/sweep.yaml, then load_sweep_config,
// make_sweep_plan and the resolved plan.
inline std::string run_sweep_yaml_input(const std::uint8_t* data, std::size_t size) {
  const std::string path = write_input("sweep.yaml", data, size);
  try {
    const SweepPlan plan = make_sweep_plan(load_sweep_config(path));
    (void)resolved_plan_yaml(plan);
  } catch (const Error& e) {
    return message_problem(e.what());
  }
  return "";
}

// kvdump files: written to <scratch>/dump.h5, opened with DumpReader (probed
// in a child process unless probing is off), then every layer, its
// statistics and the tokens are read.
inline std::string run_dump_input(const std::uint8_t* data, std::size_t size) {
  const std::string path = write_input("dump.h5", data, size);
  try {
    const DumpReader reader(path);
    const DumpInfo& info = reader.info();
    for (int layer = 0; layer < info.num_layers; ++layer) (void)layer_stats(reader.read_layer(layer));
    if (info.has_tokens) (void)reader.read_tokens();
  } catch (const Error& e) {
    return message_problem(e.what(), path);
  }
  return "";
}

}  // namespace kvlab::fuzz
