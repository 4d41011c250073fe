#include "kvlab/model/decode_compare.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kvlab/core/error.hpp"
#include "kvlab/core/progress.hpp"
#include "kvlab/model/llama_forward.hpp"

namespace kvlab {

double DecodeStep::attn_rel_mean() const {
  if (attn_rel.empty()) return NAN;
  double s = 0.0;
  for (double v : attn_rel) s += v;
  return s / static_cast<double>(attn_rel.size());
}

namespace {

// log Σ exp(a)
double log_sum_exp(const RowVector& a) {
  double mx = -std::numeric_limits<double>::infinity();
  for (Eigen::Index i = 0; i < a.size(); ++i) mx = std::max(mx, static_cast<double>(a[i]));
  double s = 0.0;
  for (Eigen::Index i = 0; i < a.size(); ++i) s += std::exp(static_cast<double>(a[i]) - mx);
  return mx + std::log(s);
}

double rel_diff(const float* a, const float* b, int n) {
  double num = 0.0, den = 0.0;
  for (int i = 0; i < n; ++i) {
    const double d = static_cast<double>(a[i]) - b[i];
    num += d * d;
    den += static_cast<double>(b[i]) * b[i];
  }
  if (den == 0.0) return num == 0.0 ? 0.0 : INFINITY;
  return std::sqrt(num / den);
}

}  // namespace

double logits_kl(const RowVector& a, const RowVector& b) {
  const double la = log_sum_exp(a), lb = log_sum_exp(b);
  double kl = 0.0;
  for (Eigen::Index i = 0; i < a.size(); ++i) {
    const double lpa = a[i] - la, lpb = b[i] - lb;
    kl += std::exp(lpa) * (lpa - lpb);
  }
  return std::max(kl, 0.0);
}

double cross_entropy(const RowVector& a, std::int64_t target) {
  return log_sum_exp(a) - static_cast<double>(a[static_cast<Eigen::Index>(target)]);
}

std::int64_t argmax(const RowVector& a) {
  Eigen::Index i = 0;
  a.maxCoeff(&i);
  return static_cast<std::int64_t>(i);
}

DecodeResult compare_to_reference(const ModelWeights& model, const ReferenceRun& ref, const Compressor& compressor,
                                  const DecodeOptions& o) {
  const ModelConfig& c = model.config;
  const int P = ref.prompt_len;
  const int steps = static_cast<int>(ref.steps.size());
  ForwardOptions fo;
  fo.max_tokens = P + steps;
  fo.seed = o.seed;
  fo.threads = o.threads;
  LlamaForward comp(model, compressor, fo);
  comp.prefill(ref.prompt);

  DecodeResult r;
  r.compressor = compressor.spec();
  r.seed = o.seed;
  r.free_running = ref.free_running;
  r.prompt_len = P;
  r.kv_check = ref.kv_check;
  r.mean_attn_rel.assign(static_cast<std::size_t>(c.num_layers), 0.0);
  // Prefill is exact in both runs, so the first fed token is shared.
  std::int64_t next_comp = argmax(comp.logits());
  double ce_ref = 0.0, ce_comp = 0.0, hidden = 0.0, kl = 0.0, bits_per_element = 0.0;
  int ce_n = 0, agree = 0, match = 0;
  bool shared = true;
  for (int s = 0; s < steps; ++s) {
    const ReferenceStep& rs = ref.steps[static_cast<std::size_t>(s)];
    DecodeStep st;
    st.step = s;
    st.position = P + s;
    st.token_ref = rs.token;
    st.token_comp = ref.free_running ? next_comp : rs.token;
    st.target = rs.target;
    comp.step(st.token_comp);
    if (st.token_comp != st.token_ref && shared) {
      shared = false;
      r.first_divergence = s;
    }
    st.shared_context = shared;
    st.top1_ref = argmax(rs.logits);
    st.top1_comp = next_comp = argmax(comp.logits());
    st.kl = logits_kl(rs.logits, comp.logits());
    st.hidden_rel = rel_diff(comp.hidden().data(), rs.hidden.data(), c.hidden_size);
    if (st.target >= 0) {
      st.ce_ref = cross_entropy(rs.logits, st.target);
      st.ce_comp = cross_entropy(comp.logits(), st.target);
    }
    st.attn_rel.resize(static_cast<std::size_t>(c.num_layers));
    for (int l = 0; l < c.num_layers; ++l) {
      const Matrix& a = rs.attn[static_cast<std::size_t>(l)];
      const Matrix& b = comp.attention_output(l);
      double sum = 0.0;
      for (int h = 0; h < c.num_heads; ++h) sum += rel_diff(b.row(h).data(), a.row(h).data(), c.head_dim);
      st.attn_rel[static_cast<std::size_t>(l)] = sum / c.num_heads;
    }
    const double bits = static_cast<double>(comp.bits().total());
    st.compression_ratio = bits > 0 ? rs.fp16_bits / bits : INFINITY;
    bits_per_element += 16.0 * bits / rs.fp16_bits;
    if (st.token_ref == st.token_comp) ++match;
    if (shared) {  // summary means: the shared-context steps only
      ++r.shared_steps;
      kl += st.kl;
      r.max_kl = std::max(r.max_kl, st.kl);
      hidden += st.hidden_rel;
      agree += st.top1_ref == st.top1_comp;
      for (int l = 0; l < c.num_layers; ++l)
        r.mean_attn_rel[static_cast<std::size_t>(l)] += st.attn_rel[static_cast<std::size_t>(l)];
      if (st.target >= 0) {
        ce_ref += st.ce_ref;
        ce_comp += st.ce_comp;
        ++ce_n;
      }
    }
    if (ref.free_running) {
      r.generated_ref.push_back(st.token_ref);
      r.generated_comp.push_back(st.token_comp);
    }
    r.steps.push_back(std::move(st));
    if (o.progress) o.progress->advance();
  }
  const double n = std::max(r.shared_steps, 1);
  r.mean_kl = kl / n;
  r.mean_hidden_rel = hidden / n;
  r.final_hidden_rel = r.steps.empty() ? NAN : r.steps.back().hidden_rel;
  r.top1_agreement = agree / n;
  for (double& v : r.mean_attn_rel) v /= n;
  if (ce_n > 0) {
    r.mean_ce_ref = ce_ref / ce_n;
    r.mean_ce_comp = ce_comp / ce_n;
    r.ppl_ref = std::exp(r.mean_ce_ref);
    r.ppl_comp = std::exp(r.mean_ce_comp);
    r.ppl_ratio = std::exp(r.mean_ce_comp - r.mean_ce_ref);
  }
  if (ref.free_running) r.token_match_rate = match / static_cast<double>(std::max(steps, 1));
  r.compression_ratio = r.steps.empty() ? 1.0 : r.steps.back().compression_ratio;
  if (steps > 0) r.mean_bits_per_element = bits_per_element / steps;
  return r;
}

DecodeResult decode_compare(const ModelWeights& model, const std::vector<std::int64_t>& tokens,
                            const Compressor& compressor, const DecodeOptions& options, const DumpReader* dump,
                            const KvCheckOptions& kv) {
  DecodeOptions ref_options = options;
  ref_options.progress = nullptr;
  const ReferenceRun ref = run_reference(model, tokens, ref_options, dump, kv);
  return compare_to_reference(model, ref, compressor, options);
}

}  // namespace kvlab
