#pragma once
// Aggregates a JobResult into the numbers of one summary row and one row per
// evaluated decode step (docs/metrics.md). Aggregation runs in block order, so it
// is independent of how blocks were scheduled.
#include <vector>

#include "kvlab/replay/replay_dump.hpp"

namespace kvlab {

struct JobSummary {
  int layers = 0, kv_heads = 0, tokens = 0, prompt_len = 0, decode_steps = 0, eval_points = 0;
  std::uint64_t baseline_bits = 0;
  BitCount bits;
  double compression_ratio = 0, bits_per_element = 0;
  double k_rel_err_mean = 0, k_rel_err_global = 0, k_max_abs_err = 0;  // NaN when keys are not reconstructible
  double v_rel_err_mean = 0, v_rel_err_global = 0, v_max_abs_err = 0;
  double attn_out_rel = 0, attn_kl = 0, attn_kl_rev = 0, dropped_mass = 0;  // NaN without attention metrics
};

struct StepSummary {
  int decode_step = 0, position = 0, tokens = 0;
  double attn_out_rel = 0, attn_kl = 0, attn_kl_rev = 0, dropped_mass = 0;  // means over query heads
  double k_rel_err = 0, v_rel_err = 0;                     // global over blocks
  double compression_ratio = 0;
};

JobSummary summarize(const JobResult& job);
std::vector<StepSummary> summarize_steps(const JobResult& job);

}  // namespace kvlab
