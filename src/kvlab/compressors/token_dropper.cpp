#include "kvlab/compressors/token_dropper.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "kvlab/compressors/registry.hpp"
#include "kvlab/core/error.hpp"

namespace kvlab {

BitCount TokenStore::token_bits(int d) const {
  if (!quant) {
    BitCount b;
    b.fp16_buffer = fp16_baseline_bits(1, static_cast<std::uint64_t>(d));
    return b;
  }
  const BitCount one = quant_bits(1, d, *quant);
  return one + one;
}

void TokenStore::encode(ConstMatrixRef x, MatrixRef out) const {
  if (!quant) {
    out = x;
    return;
  }
  fake_quantize(x, *quant, out);
}

ParamSpec inner_param() {
  return {"inner", ParamType::Spec, "",
          "per-token store of kept tokens (fp16 if unset; uniform:axis=token composes, per-channel specs are "
          "rejected)"};
}

TokenStore token_store_from(const ParamValues& p, const Registry& registry, const std::string& method) {
  const std::string& inner = p.get_spec("inner");
  if (inner.empty()) return {};
  const ResolvedSpec r = registry.resolve(inner);
  const std::string& name = r.method->name;
  if (name == "fp16") return {};
  if (name == "uniform") {
    if (r.values.get_choice("rotation") != "none")
      fail("{}: inner=({}): a dropper's per-token store does not rotate; use rotation=none", method, r.canonical);
    const QuantAxis axis = parse_quant_axis(r.values.get_choice("axis"));
    if (axis == QuantAxis::PerToken)
      return TokenStore{QuantConfig{r.values.get_int("bits"), QuantAxis::PerToken, r.values.get_int("group")}};
  }
  fail("{}: inner=({}) is not a per-token codec; a dropper can only store kept tokens with a per-token "
       "codec (fp16 or uniform:axis=token), because a per-channel group spans tokens that may be evicted later",
       method, r.canonical);
}

int budget_count(double fraction, int absolute, int n) {
  if (absolute > 0) return absolute;
  return static_cast<int>(std::floor(fraction * n + 1e-9));
}

std::vector<int> pyramid_budgets(int flat, int num_layers, double beta) {
  KVLAB_ASSERT(num_layers >= 1 && beta >= 1.0 && flat >= 0);
  std::vector<int> out(static_cast<std::size_t>(num_layers), flat);
  if (num_layers == 1) return out;
  const double mn = flat / beta;
  const double mx = 2.0 * flat - mn;
  const double step = (mx - mn) / (num_layers - 1);
  long long total = 0;
  for (int l = 0; l < num_layers; ++l) {
    out[l] = static_cast<int>(std::floor(mx - l * step + 1e-9));
    total += out[l];
  }
  long long rest = static_cast<long long>(flat) * num_layers - total;
  KVLAB_ASSERT(rest >= 0 && rest <= num_layers);
  for (int l = 0; rest > 0; ++l, --rest) ++out[l];
  return out;
}

int pyramid_budget(int flat, int layer, int num_layers, double beta) {
  return pyramid_budgets(flat, num_layers, beta)[static_cast<std::size_t>(layer)];
}

TokenDropperState::TokenDropperState(const BlockContext& ctx, TokenStore store, bool index_free)
    : ctx_(ctx), store_(store), index_free_(index_free), recon_(ctx.max_tokens, ctx.head_dim) {}

void TokenDropperState::store_tokens(ConstMatrixRef keys, ConstMatrixRef values) {
  const int t = recon_.size();
  const int n = static_cast<int>(keys.rows());
  recon_.resize(t + n);
  store_.encode(keys, recon_.keys_rows(t, n));
  store_.encode(values, recon_.values_rows(t, n));
  kept_ += n;
}

void TokenDropperState::store_token(ConstRowRef key, ConstRowRef value) {
  const int t = recon_.size();
  recon_.resize(t + 1);
  recon_.keys_rows(t, 1) = key;
  recon_.values_rows(t, 1) = value;
  if (store_.quant) {
    store_.encode(recon_.keys_rows(t, 1), recon_.keys_rows(t, 1));
    store_.encode(recon_.values_rows(t, 1), recon_.values_rows(t, 1));
  }
  ++kept_;
}

void TokenDropperState::evict(int position) {
  KVLAB_ASSERT(position >= 0 && position < recon_.size() && recon_.is_present(position));
  recon_.evict(position);
  --kept_;
  evictions_.emplace_back(recon_.size(), position);
}

void TokenDropperState::changes_since(int since, CacheChanges& out) const {
  KVLAB_ASSERT(since >= 0 && since <= recon_.size());
  out.clear();
  out.add(since, recon_.size());
  for (auto it = evictions_.rbegin(); it != evictions_.rend() && it->first > since; ++it)
    if (it->second < since) out.add(it->second, it->second + 1);
}

std::vector<int> TokenDropperState::kept_positions() const {
  std::vector<int> out;
  out.reserve(static_cast<std::size_t>(kept_));
  for (int i = 0; i < recon_.size(); ++i)
    if (recon_.is_present(i)) out.push_back(i);
  return out;
}

BitCount TokenDropperState::bits() const {
  const BitCount one = store_.token_bits(recon_.head_dim());
  const auto k = static_cast<std::uint64_t>(kept_);
  BitCount b;
  b.codes = one.codes * k;
  b.metadata = one.metadata * k;
  b.fp16_buffer = one.fp16_buffer * k;
  const auto t = static_cast<std::uint64_t>(recon_.size());
  if (!index_free_ && k != t) b.index = std::min<std::uint64_t>(t, 32ULL * k);
  return b;
}

std::vector<int> top_positions(const std::vector<int>& candidates, const std::vector<double>& scores, int count) {
  std::vector<int> c = candidates;
  count = std::clamp(count, 0, static_cast<int>(c.size()));
  std::partial_sort(c.begin(), c.begin() + count, c.end(), [&](int a, int b) {
    if (scores[a] != scores[b]) return scores[a] > scores[b];
    return a < b;
  });
  c.resize(static_cast<std::size_t>(count));
  std::sort(c.begin(), c.end());
  return c;
}

std::vector<int> non_heavy_positions(const std::vector<double>& scores, int older, int heavy) {
  std::vector<int> candidates(static_cast<std::size_t>(older));
  for (int i = 0; i < older; ++i) candidates[static_cast<std::size_t>(i)] = i;
  std::vector<char> keep(static_cast<std::size_t>(older), 0);
  for (int i : top_positions(candidates, scores, heavy)) keep[static_cast<std::size_t>(i)] = 1;
  std::vector<int> rest;
  for (int i = 0; i < older; ++i)
    if (!keep[static_cast<std::size_t>(i)]) rest.push_back(i);
  return rest;
}

void require_queries(const QueryGroup& q, const char* method) {
  if (q.empty()) fail("{} scores tokens by attention and needs queries; the dump has none", method);
}

}  // namespace kvlab
