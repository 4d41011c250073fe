#pragma once
// Shared base of the token droppers (H2O, StreamingLLM, SnapKV, PyramidKV):
// a CacheState over ReconBuffer that stores every fed token once, through a
// per-token store (FP16, or an inner per-token quantizer given as
// `inner=(spec)`), and evicts positions for good (ReconBuffer::evict).
//
// Bits (exact, docs/methods/droppers.md):
//   kept tokens:  kept · token_bits, token_bits = 2·16·d in fp16_buffer (FP16
//                 store), or 2·quant_bits(1, d, inner) in codes + metadata
//                 (K and V quantized per-token with the inner config);
//   kept-set index (BitCount::index), t = positions seen:
//                 0 if nothing was evicted (kept == t implies the set),
//                 else min(t, 32·kept): a 1-bit-per-position bitmap or one
//                 32-bit position per kept token, whichever is smaller (the
//                 decoder knows t and kept, so it knows which one is stored);
//                 methods whose kept set is a closed-form function of t
//                 (StreamingLLM) store no index: 0.
//
// Composition: only per-token codecs compose with dropping — a per-token group
// holds one token, so evicting a token never touches another token's storage.
// A per-channel group spans tokens that may be evicted later, so per-channel
// inner specs (uniform:axis=channel, kivi, kcvt, gear, ...) are rejected.
// Score-based droppers score the keys as the cache holds them (the
// reconstruction written by the store), not the recorded keys.
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "kvlab/compressors/params.hpp"
#include "kvlab/compressors/recon_buffer.hpp"
#include "kvlab/quant/group_quantizer.hpp"

namespace kvlab {

class Registry;

// How kept tokens are stored: FP16 (no quant) or a per-token quantizer.
struct TokenStore {
  std::optional<QuantConfig> quant;

  // K and V of one token of head_dim d.
  BitCount token_bits(int d) const;
  // Writes the stored form of x [n × d] into out (same shape; may alias).
  void encode(ConstMatrixRef x, MatrixRef out) const;
};

// The `inner` parameter every dropper declares.
ParamSpec inner_param();
// Resolves `inner` ("" = FP16) to a TokenStore; throws kvlab::Error naming
// `method` for inner specs that are not per-token codecs.
TokenStore token_store_from(const ParamValues& p, const Registry& registry, const std::string& method);

// ⌊fraction · n⌋ (with a 1e-9 guard against binary rounding, so 0.1 · 30 = 3),
// or `absolute` when it is > 0.
int budget_count(double fraction, int absolute, int n);

// PyramidKV schedule: splits a flat per-layer budget `flat` over num_layers
// layers linearly decreasing from layer 0 to the last, with the same total.
//   min = flat / beta, max = 2·flat − min, c_l = max − l·(max − min)/(L − 1)
//   budget_l = ⌊c_l⌋, then the remainder flat·L − Σ⌊c_l⌋ (< L) is handed out
//   one token each to the lowest layers — exact total flat·L, non-increasing.
// num_layers == 1 (or beta == 1): flat for every layer. Requires beta ≥ 1.
std::vector<int> pyramid_budgets(int flat, int num_layers, double beta);
int pyramid_budget(int flat, int layer, int num_layers, double beta);

class TokenDropperState : public CacheState {
 public:
  TokenDropperState(const BlockContext& ctx, TokenStore store, bool index_free = false);

  int size() const override { return recon_.size(); }
  CacheView view() const override { return recon_.view(); }
  BitCount bits() const override;
  // Rows appended since plus positions evicted since: stored rows are written
  // once, so a subclass that feeds its cache only through store_token(s) and
  // evict (the only way to reach it) is covered.
  void changes_since(int since, CacheChanges& out) const override;

  int kept() const { return kept_; }
  bool is_present(int position) const { return recon_.is_present(position); }
  std::vector<int> kept_positions() const;

 protected:
  // Stores tokens at positions [size(), size() + n) through the store.
  void store_tokens(ConstMatrixRef keys, ConstMatrixRef values);
  void store_token(ConstRowRef key, ConstRowRef value);
  void evict(int position);  // a present position; gone for good
  // Keys as the cache holds them, rows [0, size()).
  ConstMatrixRef held_keys() const { return recon_.view().keys; }
  const std::uint8_t* present_mask() const {
    const CacheView v = recon_.view();
    return v.present ? v.present->data() : nullptr;
  }

  BlockContext ctx_;

 private:
  TokenStore store_;
  bool index_free_;
  ReconBuffer recon_;
  int kept_ = 0;
  Matrix scratch_;
  // Evictions in order: {size() when evicted, position}.
  std::vector<std::pair<int, int>> evictions_;
};

// Selects the `count` highest-scoring positions among `candidates`; ties go to
// the lower position. Returns them sorted by position.
std::vector<int> top_positions(const std::vector<int>& candidates, const std::vector<double>& scores, int count);

// H2O's prefill split: of positions [0, older), the ones NOT among the
// `heavy` highest-scoring (the rest, [older, ...), is the protected window).
std::vector<int> non_heavy_positions(const std::vector<double>& scores, int older, int heavy);

// Fails with a clear error when a score-based dropper is fed no queries.
void require_queries(const QueryGroup& q, const char* method);

}  // namespace kvlab
