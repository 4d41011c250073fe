// `kvlab regress`: rerun fixed dumps and compare with committed baselines.
#include <fmt/format.h>

#include "cli/cli_util.hpp"
#include "cli/commands.hpp"
#include "kvlab/core/error.hpp"
#include "kvlab/regress/regress.hpp"

namespace kvlab::cli {

namespace {

struct RegressCliOptions {
  std::string config = "data/regress.yaml";
  bool update = false;
  bool verbose = false;
  int threads = 0;
};

std::string num(double v) { return std::isnan(v) ? "-" : fmt::format("{:.10g}", v); }

int run(const RegressCliOptions& o, const GlobalOptions& global) {
  const RegressConfig config = load_regress_config(o.config);
  const MetricTable now = run_regress_cases(config, o.threads, global.quiet);
  if (o.update) {
    MetricTable old;
    try {
      old = read_baseline(config.baseline);
    } catch (const Error&) {
    }
    const auto changed = compare_metrics(config, old, now);
    write_baseline(config.baseline, now);
    fmt::print("regress: wrote {} ({} cases); {} value(s) changed\n", config.baseline, now.size(), changed.size());
    std::vector<std::vector<std::string>> rows{{"case", "metric", "old", "new"}};
    for (const auto& d : changed) rows.push_back({d.case_name, d.metric, num(d.baseline), num(d.now)});
    if (!changed.empty()) fmt::print("{}", format_table(rows));
    return 0;
  }
  const MetricTable baseline = read_baseline(config.baseline);
  const auto diffs = compare_metrics(config, baseline, now);
  if (o.verbose) {  // every comparison, not only the failing ones
    std::vector<std::vector<std::string>> rows{{"case", "metric", "baseline", "now", "allowed", "result"}};
    for (const auto& [name, metrics] : now)
      for (const auto& [metric, value] : metrics) {
        const Tolerance& tol = config.tolerance(metric);
        const auto b = baseline.find(name);
        const bool known = b != baseline.end() && b->second.count(metric);
        const double base = known ? b->second.at(metric) : NAN;
        rows.push_back({name, metric, num(base), num(value), fmt::format("±{:g} + {:g}·|x|", tol.abs, tol.rel),
                        known && tol.allows(base, value) ? "ok" : "FAIL"});
      }
    fmt::print("{}", format_table(rows));
  }
  if (diffs.empty()) {
    fmt::print("regress: {} cases, every metric within tolerance of {}\n", now.size(), config.baseline);
    return 0;
  }
  std::vector<std::vector<std::string>> rows{{"case", "metric", "baseline", "now", "allowed"}};
  for (const auto& d : diffs) rows.push_back({d.case_name, d.metric, num(d.baseline), num(d.now), d.allowed});
  fmt::print("{}", format_table(rows));
  fmt::print(stderr, "kvlab: error: regression: {} value(s) outside tolerance (see the table above)\n", diffs.size());
  return 1;
}

}  // namespace

void add_regress_command(CLI::App& app, GlobalOptions& global, Action& action) {
  auto* cmd = app.add_subcommand("regress", "Rerun fixed dumps and compare with committed baselines");
  auto o = std::make_shared<RegressCliOptions>();
  cmd->add_option("-c,--config", o->config, "Regression config (default data/regress.yaml)");
  cmd->add_flag("--update", o->update, "Rewrite the baseline from this run and print what changed");
  cmd->add_flag("-v,--verbose", o->verbose, "Print every case's metrics with baseline and tolerance");
  cmd->add_option("-j,--threads", o->threads, "Worker threads (default: all cores)")->check(CLI::NonNegativeNumber);
  cmd->callback([&action, &global, o] { action = [o, &global] { return run(*o, global); }; });
}

}  // namespace kvlab::cli
