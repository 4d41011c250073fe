#pragma once
// Loading a sweep file strictly. yaml-cpp accepts a duplicate key silently
// (lookups see the first, iteration both), follows aliases (so a few lines
// can expand to billions of nodes) and ignores a second document; a sweep
// file that does any of this is almost certainly a mistake, so it is refused
// with the line at fault.
#include <string>

#include <yaml-cpp/yaml.h>

namespace kvlab {

// Largest sweep (or included) file accepted: sweep files are a few KB.
inline constexpr std::size_t kMaxSweepFileBytes = 4u << 20;

// Parses `path` (a regular file of at most kMaxSweepFileBytes) as one YAML
// document whose map keys are unique plain scalars, which uses no alias and
// whose scalars hold no control character (messages quote them on one line).
// Throws kvlab::Error "<path>: line N: ..." otherwise.
YAML::Node load_strict_yaml(const std::string& path);

}  // namespace kvlab
