#pragma once
// A sweep file (docs/sweeps.md), parsed and validated before any work starts:
// unknown keys (with "did you mean"), wrong types, out-of-range values and
// missing dumps each give one message naming the file and the key.
#include <cstdint>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "kvlab/replay/replay_options.hpp"

namespace kvlab {

inline constexpr std::size_t kDefaultMaxJobs = 100000;

struct SweepConfig {
  std::string file;                 // the YAML file
  std::string name;
  int version = 1;
  std::vector<std::string> dumps;   // resolved paths (globs expanded, sorted)
  YAML::Node compressors;           // the list, expanded by sweep_plan
  ReplayOptions replay;             // layers, eval_every, max_steps, attention, seed, threads
  std::string out;                  // results folder ("" = results/<name>)
  // Model in the loop (optional): every job also runs `kvlab decode` on its
  // dump's tokens with this kvlab-model (docs/model-in-the-loop.md).
  std::string model;                // resolved path; "" = none
  bool decode_free = false;         // decode.mode: teacher (default) | free
  int decode_steps = -1;            // decode.steps: -1 = the decode default
  bool decode_kv_check = true;      // decode.kv_rtol: off disables the K/V check against the dump
  double decode_kv_rtol = 1e-2;     // decode.kv_rtol: its tolerance (relative norm per layer)
  // Most specs one compressor entry may expand to (its lists' Cartesian
  // product), checked before the product is built.
  std::size_t max_jobs = kDefaultMaxJobs;
};

// Loads `path`, applies `include:` (fields here override the included file's;
// maps merge key by key), resolves dump globs relative to the file that names
// them, and validates everything but the compressor specs (see SweepPlan).
SweepConfig load_sweep_config(const std::string& path);

// Throws unless `name` is 1-128 characters of [A-Za-z0-9._-] and not "." or
// "..": it becomes a folder name (results/<name>). `file` names the sweep file.
void check_sweep_name(const std::string& name, const std::string& file);

// Expands a glob pattern (*, ?, [..]) into sorted existing paths.
std::vector<std::string> expand_glob(const std::string& pattern);

}  // namespace kvlab
