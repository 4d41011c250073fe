#pragma once
// Regression tests on fixed dumps (docs/regress.md): a committed list of
// (dump, compressor, replay settings) cases whose metrics and exact bit counts
// are compared with a committed baseline CSV within per-metric tolerances.
#include <map>
#include <string>
#include <vector>

#include "kvlab/replay/replay_options.hpp"

namespace kvlab {

struct Tolerance {
  double abs = 0.0;
  double rel = 0.0;
  bool allows(double baseline, double now) const;
};

struct RegressCase {
  std::string name;
  std::string dump;  // resolved path
  std::string compressor;
  ReplayOptions replay;
};

struct RegressConfig {
  std::string file;
  std::string baseline;  // resolved path of the baseline CSV
  std::vector<RegressCase> cases;
  Tolerance default_tolerance;
  std::map<std::string, Tolerance> tolerances;  // per metric
  const Tolerance& tolerance(const std::string& metric) const;
};

RegressConfig load_regress_config(const std::string& path);

// case name → metric → value
using MetricTable = std::map<std::string, std::map<std::string, double>>;

// Runs every case (parallel inside each replay) and returns its metrics.
MetricTable run_regress_cases(const RegressConfig& config, int threads, bool quiet);

MetricTable read_baseline(const std::string& path);
void write_baseline(const std::string& path, const MetricTable& table);

struct RegressDiff {
  std::string case_name, metric;
  double baseline = 0, now = 0;
  std::string allowed;  // "±abs or ±rel·|x|", "missing" ...
};

std::vector<RegressDiff> compare_metrics(const RegressConfig& config, const MetricTable& baseline,
                                         const MetricTable& now);

}  // namespace kvlab
