#include "kvlab/runner/job_cost.hpp"

#include <map>

#include "kvlab/core/error.hpp"
#include "kvlab/replay/replay_dump.hpp"

namespace kvlab {

namespace {

// Measured on the bundled dumps with attention metrics off (compress +
// reconstruct only), relative to uniform 2-bit; methods not listed count 1.
const std::map<std::string, double>& factors() {
  static const std::map<std::string, double> f{
      {"fp16", 1},       {"uniform", 1},      {"kcvt", 1},       {"kivi", 1},           {"streaming", 1},
      {"snapkv", 3},     {"pyramidkv", 3},    {"h2o", 1},        {"outlier-quant", 4},  {"gear-l", 10},
      {"gear", 12},      {"gear-kcvt", 8},    {"gear-l-kcvt", 7}, {"qjl", 25},          {"kvquant", 35},
  };
  return f;
}

bool scores_every_step(const ResolvedSpec& spec) {
  const std::string& m = spec.method->name;
  if (m == "h2o") return true;
  return m == "pyramidkv" && spec.values.has("base") && spec.values.text("base") == "h2o";
}

// H2O's per-step scoring costs about 6 % of a full attention evaluation.
constexpr double kScoreCost = 0.12;

}  // namespace

double method_cost_factor(const ResolvedSpec& spec) {
  const auto it = factors().find(spec.method->name);
  double f = it == factors().end() ? 1.0 : it->second;
  if (spec.values.has("rank") && spec.method->name.rfind("gear", 0) == 0)
    f += 0.5 * spec.values.get_int("rank");  // power iteration grows with the rank
  return f;
}

double estimated_job_cost(const Job& job, const DumpInfo& info) {
  std::size_t layers = 0;
  try {
    layers = selected_layers(info, job.replay).size();
  } catch (const Error&) {
    return 0;
  }
  const int steps = selected_decode_steps(info, job.replay);
  const double prompt = info.prompt_len, tokens = prompt + steps, group = info.group_size();
  double per_row = method_cost_factor(job.spec) * tokens;
  if (job.replay.attention && info.has_queries) {
    double attended = 0;
    for (int s : evaluation_steps(steps, job.replay.eval_every)) attended += prompt + s;
    per_row += (2 + group) * attended;  // reading the cache once, then each query head of the group
  }
  if (scores_every_step(job.spec)) per_row += kScoreCost * group * (prompt * steps + 0.5 * steps * (steps + 1.0));
  return static_cast<double>(layers) * info.num_kv_heads * info.head_dim * per_row;
}

}  // namespace kvlab
