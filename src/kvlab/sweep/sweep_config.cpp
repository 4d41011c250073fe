#include "kvlab/sweep/sweep_config.hpp"

#include <glob.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <system_error>
#include <fstream>
#include <map>

#include "kvlab/compressors/params.hpp"
#include "kvlab/core/error.hpp"
#include "kvlab/io/quoted.hpp"
#include "kvlab/sweep/strict_yaml.hpp"

namespace kvlab {

namespace fs = std::filesystem;

namespace {

// fs::exists without the exception: a name the OS refuses (too long, bad
// bytes) is reported as "not found" with the file and key, like a missing one.
bool exists_quietly(const fs::path& p) {
  std::error_code ec;
  return fs::exists(p, ec);
}

const std::vector<std::string> kTopKeys = {"name",    "version", "include", "dumps", "compressors", "replay",
                                           "metrics", "threads", "seed",    "out",   "model",       "decode",
                                           "max_jobs"};
const std::vector<std::string> kDecodeKeys = {"mode", "steps", "kv_rtol"};
const std::vector<std::string> kReplayKeys = {"layers", "eval_every", "max_steps"};
const std::vector<std::string> kMetrics = {"reconstruction", "attention"};

void check_keys(const YAML::Node& map, const std::vector<std::string>& allowed, const std::string& file,
                const std::string& prefix) {
  for (const auto& kv : map) {
    const std::string key = kv.first.as<std::string>();
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end())
      fail("{}: unknown key '{}{}'{}; valid: {}", file, prefix, key, did_you_mean(key, allowed),
           fmt::join(allowed, ", "));
  }
}

template <typename T>
T scalar_as(const YAML::Node& node, const std::string& file, const std::string& key, const char* type) {
  if (!node.IsScalar()) fail("{}: '{}' must be {}", file, key, type);
  try {
    return node.as<T>();
  } catch (const YAML::Exception&) {
    fail("{}: '{}' must be {}, got '{}'", file, key, type, node.Scalar());
  }
}

int int_in_range(const YAML::Node& node, const std::string& file, const std::string& key, long long lo,
                 long long hi) {
  const long long v = scalar_as<long long>(node, file, key, "an integer");
  if (v < lo || v > hi) fail("{}: '{}' = {} is out of range [{}, {}]", file, key, v, lo, hi);
  return static_cast<int>(v);
}

YAML::Node load_yaml(const std::string& path) {
  YAML::Node node = load_strict_yaml(path);
  if (!node.IsMap()) fail("{}: a sweep file is a YAML map (name, dumps, compressors, ...)", path);
  return node;
}

// Paths in a file are relative to that file: rewrite them before merging.
void absolutise_paths(YAML::Node& node, const fs::path& dir) {
  auto fix = [&](const YAML::Node& n) {
    const fs::path p(n.as<std::string>());
    return (p.is_absolute() ? p : dir / p).lexically_normal().string();
  };
  if (node["dumps"]) {
    YAML::Node dumps = node["dumps"];
    if (dumps.IsScalar()) {
      node["dumps"] = fix(dumps);
    } else if (dumps.IsSequence()) {
      YAML::Node out(YAML::NodeType::Sequence);
      for (const auto& d : dumps) out.push_back(d.IsScalar() ? YAML::Node(fix(d)) : YAML::Node(d));
      node["dumps"] = out;
    }
  }
  for (const char* key : {"out", "model"})
    if (node[key] && node[key].IsScalar()) node[key] = fix(node[key]);
}

// Maps merge key by key (override wins); anything else is replaced.
YAML::Node merge(const YAML::Node& base, const YAML::Node& over) {
  if (!base.IsMap() || !over.IsMap()) return YAML::Clone(over);
  YAML::Node out = YAML::Clone(base);
  for (const auto& kv : over) {
    const std::string key = kv.first.as<std::string>();
    out[key] = out[key] ? merge(out[key], kv.second) : YAML::Clone(kv.second);
  }
  return out;
}

YAML::Node load_with_includes(const std::string& path, int depth) {
  if (depth > 8) fail("{}: include nests too deeply (a cycle?)", path);
  YAML::Node node = load_yaml(path);
  check_keys(node, kTopKeys, path, "");
  const fs::path dir = fs::absolute(path).parent_path();
  absolutise_paths(node, dir);
  YAML::Node result(YAML::NodeType::Map);
  if (const YAML::Node inc = node["include"]) {
    std::vector<std::string> files;
    if (inc.IsScalar())
      files.push_back(inc.as<std::string>());
    else if (inc.IsSequence())
      for (const auto& f : inc) files.push_back(scalar_as<std::string>(f, path, "include", "a path"));
    else
      fail("{}: 'include' must be a path or a list of paths", path);
    for (const auto& f : files) {
      const fs::path p = fs::path(f).is_absolute() ? fs::path(f) : dir / f;
      if (!exists_quietly(p)) fail("{}: include '{}' not found ({})", path, f, p.string());
      result = merge(result, load_with_includes(p.string(), depth + 1));
    }
    node.remove("include");
  }
  return merge(result, node);
}

}  // namespace

void check_sweep_name(const std::string& name, const std::string& file) {
  const bool safe = !name.empty() && name.size() <= 128 && name != "." && name != ".." &&
                    std::all_of(name.begin(), name.end(), [](char ch) {
                      return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
                             ch == '.' || ch == '_' || ch == '-';
                    });
  if (!safe)
    fail("{}: 'name' {} must be 1-128 characters from A-Z a-z 0-9 . _ - (not \".\" or \"..\"): it names the "
         "results folder",
         file, io::quoted(name));
}

std::vector<std::string> expand_glob(const std::string& pattern) {
  glob_t g{};
  std::vector<std::string> out;
  if (::glob(pattern.c_str(), 0, nullptr, &g) == 0)
    for (std::size_t i = 0; i < g.gl_pathc; ++i) out.emplace_back(g.gl_pathv[i]);
  globfree(&g);
  std::sort(out.begin(), out.end());
  return out;
}

SweepConfig load_sweep_config(const std::string& path) {
  const YAML::Node root = load_with_includes(path, 0);
  SweepConfig c;
  c.file = path;

  if (!root["name"]) fail("{}: missing required key 'name'", path);
  c.name = scalar_as<std::string>(root["name"], path, "name", "a string");
  check_sweep_name(c.name, path);
  if (root["version"]) c.version = int_in_range(root["version"], path, "version", 1, 1);

  if (!root["dumps"]) fail("{}: missing required key 'dumps'", path);
  std::vector<std::string> patterns;
  if (root["dumps"].IsScalar())
    patterns.push_back(root["dumps"].as<std::string>());
  else if (root["dumps"].IsSequence())
    for (const auto& d : root["dumps"]) patterns.push_back(scalar_as<std::string>(d, path, "dumps", "a path"));
  else
    fail("{}: 'dumps' must be a path or a list of paths/globs", path);
  for (const auto& pat : patterns) {
    const auto found = pat.find_first_of("*?[") == std::string::npos
                           ? (exists_quietly(pat) ? std::vector<std::string>{pat} : std::vector<std::string>{})
                           : expand_glob(pat);
    if (found.empty()) fail("{}: dumps: '{}' matches no file", path, pat);
    for (const auto& f : found)
      if (std::find(c.dumps.begin(), c.dumps.end(), f) == c.dumps.end()) c.dumps.push_back(f);
  }

  if (!root["compressors"] || !root["compressors"].IsSequence() || root["compressors"].size() == 0)
    fail("{}: 'compressors' must be a non-empty list", path);
  c.compressors = root["compressors"];

  if (const YAML::Node r = root["replay"]) {
    if (!r.IsMap()) fail("{}: 'replay' must be a map ({})", path, fmt::join(kReplayKeys, ", "));
    check_keys(r, kReplayKeys, path, "replay.");
    if (r["layers"]) {
      if (!r["layers"].IsSequence()) fail("{}: 'replay.layers' must be a list of layer indices", path);
      for (const auto& l : r["layers"]) c.replay.layers.push_back(int_in_range(l, path, "replay.layers", 0, 1 << 20));
    }
    if (r["eval_every"]) c.replay.eval_every = int_in_range(r["eval_every"], path, "replay.eval_every", 0, 1 << 30);
    if (r["max_steps"]) c.replay.max_steps = int_in_range(r["max_steps"], path, "replay.max_steps", -1, 1 << 30);
  }
  c.replay.attention = true;
  if (const YAML::Node m = root["metrics"]) {
    if (!m.IsSequence()) fail("{}: 'metrics' must be a list ({})", path, fmt::join(kMetrics, ", "));
    c.replay.attention = false;
    for (const auto& item : m) {
      const std::string name = scalar_as<std::string>(item, path, "metrics", "a metric name");
      if (std::find(kMetrics.begin(), kMetrics.end(), name) == kMetrics.end())
        fail("{}: unknown metric '{}'{}; valid: {}", path, name, did_you_mean(name, kMetrics), fmt::join(kMetrics, ", "));
      if (name == "attention") c.replay.attention = true;
    }
  }
  if (root["max_jobs"])
    c.max_jobs = static_cast<std::size_t>(int_in_range(root["max_jobs"], path, "max_jobs", 1, 1 << 30));
  if (root["threads"]) c.replay.threads = int_in_range(root["threads"], path, "threads", 0, 1024);
  if (root["seed"]) c.replay.seed = static_cast<std::uint64_t>(int_in_range(root["seed"], path, "seed", 0, 1 << 30));
  if (root["out"]) c.out = scalar_as<std::string>(root["out"], path, "out", "a path");
  if (root["model"]) {
    c.model = scalar_as<std::string>(root["model"], path, "model", "a path");
    if (!exists_quietly(c.model)) fail("{}: model: '{}' not found", path, c.model);
  }
  if (const YAML::Node d = root["decode"]) {
    if (!d.IsMap()) fail("{}: 'decode' must be a map ({})", path, fmt::join(kDecodeKeys, ", "));
    check_keys(d, kDecodeKeys, path, "decode.");
    if (!root["model"]) fail("{}: 'decode' needs 'model' (a kvlab-model file)", path);
    if (d["mode"]) {
      const std::string mode = scalar_as<std::string>(d["mode"], path, "decode.mode", "teacher or free");
      if (mode != "teacher" && mode != "free") fail("{}: 'decode.mode' must be teacher or free, got '{}'", path, mode);
      c.decode_free = mode == "free";
    }
    if (d["steps"]) c.decode_steps = int_in_range(d["steps"], path, "decode.steps", 1, 1 << 30);
    if (d["kv_rtol"]) {
      const std::string text = scalar_as<std::string>(d["kv_rtol"], path, "decode.kv_rtol", "a positive number or off");
      if (text == "off" || text == "false") {
        c.decode_kv_check = false;
      } else {
        c.decode_kv_rtol = scalar_as<double>(d["kv_rtol"], path, "decode.kv_rtol", "a positive number or off");
        if (!(c.decode_kv_rtol > 0.0 && std::isfinite(c.decode_kv_rtol)))
          fail("{}: 'decode.kv_rtol' must be a positive number or off, got '{}'", path, text);
      }
    }
  }
  return c;
}

}  // namespace kvlab
