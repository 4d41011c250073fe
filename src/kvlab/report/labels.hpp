#pragma once
// Short labels for jobs in tables: the preset name when a spec is a preset,
// otherwise the method plus only the parameters that vary between the given
// jobs of that method ("gear rank=8"); the full canonical spec stays in the
// CSV files. The Python analysis uses the same rule.
#include <string>
#include <vector>

#include "kvlab/report/job_record.hpp"

namespace kvlab {

std::vector<std::string> short_labels(const std::vector<JobIdentity>& jobs);

}  // namespace kvlab
