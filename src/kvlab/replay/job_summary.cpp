#include "kvlab/replay/job_summary.hpp"

#include <cmath>
#include <limits>
#include <set>

namespace kvlab {

namespace {
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
}

JobSummary summarize(const JobResult& job) {
  JobSummary s;
  std::set<int> layers;
  TensorError k_total, v_total;
  double k_rel_sum = 0, v_rel_sum = 0;
  AttentionError attn;
  long long attn_evals = 0;
  bool keys_ok = true;
  for (const BlockResult& b : job.blocks) {
    layers.insert(b.layer);
    s.kv_heads = std::max(s.kv_heads, b.kv_head + 1);
    s.tokens = b.tokens;
    s.baseline_bits += fp16_baseline_bits(static_cast<std::uint64_t>(b.tokens), static_cast<std::uint64_t>(b.head_dim));
    s.bits += b.bits;
    keys_ok = keys_ok && b.keys_reconstructible;
    k_total += b.keys;
    v_total += b.values;
    k_rel_sum += b.keys.rel();
    v_rel_sum += b.values.rel();
    attn += b.attn;
    attn_evals += b.attn_evals;
  }
  const double n = static_cast<double>(job.blocks.size());
  s.layers = static_cast<int>(layers.size());
  s.prompt_len = job.prompt_len;
  s.decode_steps = job.decode_steps;
  s.eval_points = job.blocks.empty() ? 0 : static_cast<int>(job.blocks.front().steps.size());
  const std::uint64_t total = s.bits.total();
  s.compression_ratio = total > 0 ? static_cast<double>(s.baseline_bits) / static_cast<double>(total) : kNaN;
  s.bits_per_element = static_cast<double>(total) / (static_cast<double>(s.baseline_bits) / 16.0);
  s.k_rel_err_mean = keys_ok ? k_rel_sum / n : kNaN;
  s.k_rel_err_global = keys_ok ? k_total.rel() : kNaN;
  s.k_max_abs_err = keys_ok ? k_total.max_abs : kNaN;
  s.v_rel_err_mean = v_rel_sum / n;
  s.v_rel_err_global = v_total.rel();
  s.v_max_abs_err = v_total.max_abs;
  if (attn_evals > 0) {
    s.attn_out_rel = attn.out_rel / static_cast<double>(attn_evals);
    s.attn_kl = attn.kl / static_cast<double>(attn_evals);
    s.attn_kl_rev = attn.kl_rev / static_cast<double>(attn_evals);
    s.dropped_mass = attn.dropped_mass / static_cast<double>(attn_evals);
  } else {
    s.attn_out_rel = s.attn_kl = s.attn_kl_rev = s.dropped_mass = kNaN;
  }
  return s;
}

std::vector<StepSummary> summarize_steps(const JobResult& job) {
  std::vector<StepSummary> out;
  if (job.blocks.empty()) return out;
  const std::size_t points = job.blocks.front().steps.size();
  for (std::size_t i = 0; i < points; ++i) {
    StepSummary s;
    TensorError k, v;
    AttentionError attn;
    long long heads = 0;
    std::uint64_t bits = 0, baseline = 0;
    bool keys_ok = true;
    for (const BlockResult& b : job.blocks) {
      const StepPoint& p = b.steps[i];
      s.decode_step = p.decode_step;
      s.position = p.position;
      s.tokens = p.tokens;
      k += p.keys;
      v += p.values;
      keys_ok = keys_ok && b.keys_reconstructible;
      attn += p.attn;
      heads += p.heads;
      bits += p.bits;
      baseline += fp16_baseline_bits(static_cast<std::uint64_t>(p.tokens), static_cast<std::uint64_t>(b.head_dim));
    }
    s.k_rel_err = keys_ok ? k.rel() : kNaN;
    s.v_rel_err = v.rel();
    s.attn_out_rel = heads ? attn.out_rel / static_cast<double>(heads) : kNaN;
    s.attn_kl = heads ? attn.kl / static_cast<double>(heads) : kNaN;
    s.attn_kl_rev = heads ? attn.kl_rev / static_cast<double>(heads) : kNaN;
    s.dropped_mass = heads ? attn.dropped_mass / static_cast<double>(heads) : kNaN;
    s.compression_ratio = bits ? static_cast<double>(baseline) / static_cast<double>(bits) : kNaN;
    out.push_back(s);
  }
  return out;
}

}  // namespace kvlab
