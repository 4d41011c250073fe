#include "kvlab/model/decode_compare.hpp"

#include "kvlab/core/progress.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "kvlab/compressors/registry.hpp"
#include "kvlab/core/csv.hpp"
#include "kvlab/core/error.hpp"
#include "kvlab/io/dump_reader.hpp"
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

KvCheck check_against_dump(const LlamaForward& ref, const DumpReader& dump, int positions, double rtol,
                           double atol) {
  const DumpInfo& info = dump.info();
  const ModelConfig& c = ref.config();
  KvCheck k;
  k.done = true;
  k.positions = positions;
  for (int layer = 0; layer < c.num_layers; ++layer) {
    const LayerData data = dump.read_layer(layer, false, positions);
    for (int j = 0; j < c.num_kv_heads; ++j) {
      const CacheView view = ref.state(layer, j).view();
      for (int which = 0; which < 2; ++which) {
        const Matrix& rec = which == 0 ? data.keys[static_cast<std::size_t>(j)] : data.values[static_cast<std::size_t>(j)];
        const ConstMatrixRef mine = which == 0 ? view.keys : view.values;
        for (int t = 0; t < positions; ++t)
          for (int x = 0; x < c.head_dim; ++x) {
            const double r = rec(t, x), diff = std::abs(static_cast<double>(mine(t, x)) - r);
            const double excess = diff / (atol + rtol * std::abs(r));
            k.max_abs_diff = std::max(k.max_abs_diff, diff);
            if (excess > k.max_excess) {
              k.max_excess = excess;
              k.worst_layer = layer;
              k.worst_diff = diff;
              k.worst_head = j;
              k.worst_position = t;
              k.worst_tensor = which == 0 ? "keys" : "values";
            }
          }
      }
    }
  }
  if (k.max_excess > 1.0)
    fail("{}: the reference run's /layers/{}/{} differ from the dump beyond float16 tolerance: "
         "|Δ| = {:.3g} at kv head {}, position {} (allowed {} + {}·|x|; max |Δ| over the dump {:.3g}); "
         "was the dump recorded from this model ({}) with these tokens?",
         info.path, k.worst_layer, k.worst_tensor, k.worst_diff, k.worst_head, k.worst_position,
         atol, rtol, k.max_abs_diff, info.model.empty() ? "?" : info.model);
  return k;
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

DecodeResult decode_compare(const ModelWeights& model, const std::vector<std::int64_t>& tokens,
                            const Compressor& compressor, const DecodeOptions& o, const DumpReader* dump,
                            double kv_rtol, double kv_atol) {
  const ModelConfig& c = model.config;
  const int N = static_cast<int>(tokens.size());
  const int P = o.prompt_len;
  if (P < 1) fail("decode: the prompt length must be at least 1, found {}", P);
  if (P > N) fail("decode: prompt length {} exceeds the {} tokens given", P, N);
  int steps = o.steps;
  if (o.free_running) {
    if (steps < 0) steps = 64;
  } else {
    const int available = N - P;
    if (available < 1) fail("decode: teacher mode needs tokens after the prompt ({} tokens, prompt {})", N, P);
    if (steps < 0) steps = available;
    if (steps > available)
      fail("decode: --steps {} exceeds the {} recorded tokens after the prompt (teacher mode)", steps, available);
  }
  // Every id up front: a step's target enters the cross-entropy before any
  // step would feed (and check) it.
  for (std::size_t i = 0; i < tokens.size(); ++i)
    if (tokens[i] < 0 || tokens[i] >= c.vocab_size)
      fail("{}token id {} out of range (the model's vocabulary has ids 0..{}) at position {}",
           dump ? dump->info().path + ": /tokens: " : std::string("decode: "), tokens[i], c.vocab_size - 1, i);
  if (dump) {
    const DumpInfo& info = dump->info();
    if (info.num_layers != c.num_layers || info.num_kv_heads != c.num_kv_heads || info.head_dim != c.head_dim ||
        info.num_heads != c.num_heads)
      fail("{}: dump shape (layers {}, heads {}, kv heads {}, head_dim {}) does not match the model {} "
           "(layers {}, heads {}, kv heads {}, head_dim {})",
           info.path, info.num_layers, info.num_heads, info.num_kv_heads, info.head_dim,
           model.path.empty() ? "(in memory)" : model.path, c.num_layers, c.num_heads, c.num_kv_heads, c.head_dim);
  }

  const auto reference = Registry::global().build("fp16");
  ForwardOptions fo;
  fo.max_tokens = P + steps;
  fo.seed = o.seed;
  fo.threads = o.threads;
  LlamaForward ref(model, *reference, fo);
  LlamaForward comp(model, compressor, fo);
  const std::span<const std::int64_t> prompt(tokens.data(), static_cast<std::size_t>(P));
  ref.prefill(prompt);
  comp.prefill(prompt);

  DecodeResult r;
  r.compressor = compressor.spec();
  r.free_running = o.free_running;
  r.prompt_len = P;
  r.mean_attn_rel.assign(static_cast<std::size_t>(c.num_layers), 0.0);
  std::int64_t next_ref = argmax(ref.logits()), next_comp = argmax(comp.logits());
  double ce_ref = 0.0, ce_comp = 0.0, hidden = 0.0, kl = 0.0;
  int ce_n = 0, agree = 0, match = 0;
  for (int s = 0; s < steps; ++s) {
    DecodeStep st;
    st.step = s;
    st.position = P + s;
    if (o.free_running) {
      st.token_ref = next_ref;
      st.token_comp = next_comp;
    } else {
      st.token_ref = st.token_comp = tokens[static_cast<std::size_t>(P + s)];
      if (P + s + 1 < N) st.target = tokens[static_cast<std::size_t>(P + s + 1)];
    }
    ref.step(st.token_ref);
    comp.step(st.token_comp);
    st.top1_ref = next_ref = argmax(ref.logits());
    st.top1_comp = next_comp = argmax(comp.logits());
    st.kl = logits_kl(ref.logits(), comp.logits());
    st.hidden_rel = rel_diff(comp.hidden().data(), ref.hidden().data(), c.hidden_size);
    if (st.target >= 0) {
      st.ce_ref = cross_entropy(ref.logits(), st.target);
      st.ce_comp = cross_entropy(comp.logits(), st.target);
      ce_ref += st.ce_ref;
      ce_comp += st.ce_comp;
      ++ce_n;
    }
    st.attn_rel.resize(static_cast<std::size_t>(c.num_layers));
    for (int l = 0; l < c.num_layers; ++l) {
      const Matrix& a = ref.attention_output(l);
      const Matrix& b = comp.attention_output(l);
      double sum = 0.0;
      for (int h = 0; h < c.num_heads; ++h) sum += rel_diff(b.row(h).data(), a.row(h).data(), c.head_dim);
      st.attn_rel[static_cast<std::size_t>(l)] = sum / c.num_heads;
      r.mean_attn_rel[static_cast<std::size_t>(l)] += st.attn_rel[static_cast<std::size_t>(l)];
    }
    const double bits = static_cast<double>(comp.bits().total());
    const double base = static_cast<double>(ref.bits().total());
    st.compression_ratio = bits > 0 ? base / bits : INFINITY;
    kl += st.kl;
    r.max_kl = std::max(r.max_kl, st.kl);
    hidden += st.hidden_rel;
    agree += st.top1_ref == st.top1_comp;
    if (o.free_running) {
      r.generated_ref.push_back(st.token_ref);
      r.generated_comp.push_back(st.token_comp);
      if (st.token_ref == st.token_comp)
        ++match;
      else if (r.first_divergence < 0)
        r.first_divergence = s;
    }
    r.steps.push_back(std::move(st));
    if (o.progress) o.progress->advance();
  }
  const double n = std::max(steps, 1);
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
  if (o.free_running) r.token_match_rate = match / n;
  r.compression_ratio = r.steps.empty() ? 1.0 : r.steps.back().compression_ratio;

  if (dump) {
    // Teacher mode fed the recorded tokens everywhere; free mode only the prompt.
    const int positions = std::min(o.free_running ? P : P + steps, dump->info().seq_len);
    r.kv_check = check_against_dump(ref, *dump, positions, kv_rtol, kv_atol);
  }
  return r;
}

std::string decode_csv_header(int num_layers) {
  std::vector<std::string> f{"compressor", "mode", "step", "position", "token_ref", "token_comp", "target",
                             "top1_ref", "top1_comp", "top1_agree", "kl", "hidden_rel", "ce_ref", "ce_comp",
                             "attn_rel_mean", "compression_ratio"};
  for (int l = 0; l < num_layers; ++l) f.push_back(fmt::format("attn_rel_layer{}", l));
  return csv_line(f);
}

std::string decode_csv_row(const DecodeResult& r, const DecodeStep& s) {
  auto tok = [](std::int64_t t) { return t < 0 ? std::string() : fmt::format("{}", t); };
  std::vector<std::string> f{r.compressor, r.free_running ? "free" : "teacher", csv_number(s.step),
                             csv_number(s.position), tok(s.token_ref), tok(s.token_comp), tok(s.target),
                             tok(s.top1_ref), tok(s.top1_comp), csv_number(s.top1_ref == s.top1_comp ? 1 : 0),
                             csv_number(s.kl), csv_number(s.hidden_rel), csv_number(s.ce_ref), csv_number(s.ce_comp),
                             csv_number(s.attn_rel_mean()), csv_number(s.compression_ratio)};
  for (double v : s.attn_rel) f.push_back(csv_number(v));
  return csv_line(f);
}

}  // namespace kvlab
