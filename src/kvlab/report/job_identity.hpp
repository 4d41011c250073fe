#pragma once
// Job identities: the stable id that makes resume and merging work, and the
// parameter columns of a set of jobs.
#include <string>
#include <vector>

#include "kvlab/compressors/registry.hpp"
#include "kvlab/replay/replay_options.hpp"
#include "kvlab/report/job_record.hpp"

namespace kvlab {

// id = FNV-1a of the canonical spec, the dump's file name and size, and the
// replay settings; `extra` (e.g. model-in-the-loop settings) is hashed in too.
JobIdentity make_identity(const ResolvedSpec& spec, const std::string& dump_label, const std::string& dump_path,
                          const ReplayOptions& opts, const std::string& extra = "");

// The preset whose canonical spec is `canonical`, or "".
std::string preset_of(const std::string& canonical);

// Sorted union of the parameter names of the given methods.
std::vector<std::string> parameter_columns(const std::vector<const MethodInfo*>& methods);

}  // namespace kvlab
