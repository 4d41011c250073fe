#pragma once
// The compressor contract (docs/adding-a-method.md walks through it).
//
// A Compressor is immutable, built from a spec, and thread-safe; it makes one
// CacheState per block (one layer, one kv head). A CacheState is fed exactly as
// an inference engine would: the prompt at once (prefill), then one token at a
// time (append). At any point it reconstructs the cache and reports its exact
// size. States are single-threaded and deterministic: any randomness comes from
// Rng::for_block(ctx.seed, ctx.layer, ctx.kv_head, ...).
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "kvlab/core/attention_rule.hpp"
#include "kvlab/core/bit_count.hpp"
#include "kvlab/core/rope.hpp"
#include "kvlab/core/row_range.hpp"
#include "kvlab/core/types.hpp"

namespace kvlab {

// Per-layer data a compressor derives from the whole layer before any block is
// replayed (e.g. KVQuant's k-means levels). Computed once, single-threaded.
struct LayerCalibration {
  virtual ~LayerCalibration() = default;
};

// The recorded tensors of one layer, as handed to Compressor::calibrate.
struct LayerView {
  std::span<const Matrix> keys;     // num_kv_heads × [T × d]
  std::span<const Matrix> values;   // num_kv_heads × [T × d]
  std::span<const Matrix> queries;  // num_heads × [T × d]; empty if the dump has none
};

struct BlockContext {
  int layer = 0;
  int num_layers = 1;
  int kv_head = 0;
  int num_kv_heads = 1;
  int head_dim = 0;
  int group_size = 1;   // query heads per kv head (GQA)
  int prompt_len = 0;   // tokens given to prefill
  int max_tokens = 0;   // tokens that will be fed in total (capacity hint)
  std::uint64_t seed = 0;
  std::optional<RopeInfo> rope;                          // the layer's, from the dump, if recorded
  AttentionRule attention;                               // the layer's scale, soft-cap and window
  std::shared_ptr<const LayerCalibration> calibration;   // from Compressor::calibrate
};

// Queries of the block's GQA group for a range of positions: heads[j] is
// [n × d] for query head j of the group (n = P at prefill, 1 at append).
// Empty when the dump has no queries.
using QueryGroup = std::vector<ConstMatrixRef>;

// The current reconstruction: rows [0, t) of K̂ and V̂ ([t × d]); rows of
// absent (evicted) tokens are zero. `present` is null when every token is
// present; otherwise it has at least t entries (1 = present).
struct CacheView {
  ConstMatrixRef keys;
  ConstMatrixRef values;
  const PresentMask* present = nullptr;

  int tokens() const { return static_cast<int>(keys.rows()); }
  bool is_present(int i) const { return present == nullptr || (*present)[i] != 0; }
};

// Rows of a view that may have changed between two points of the feeding
// (CacheReader::changes_since): rows of K̂ and rows of V̂ (an eviction changes
// both, and the present mask). Ranges may overlap and may list rows that did
// not change; a row listed in neither is bit-identical to what it was.
struct CacheChanges {
  RowRanges keys;
  RowRanges values;

  void clear() {
    keys.clear();
    values.clear();
  }
  void add(int begin, int end) {
    add_rows(keys, begin, end);
    add_rows(values, begin, end);
  }
};

// The read side of one block's cache: what metrics and the model read.
class CacheReader {
 public:
  virtual ~CacheReader() = default;

  virtual int size() const = 0;  // positions fed so far
  virtual CacheView view() const = 0;
  virtual BitCount bits() const = 0;  // exact, for the cache as it is now

  // Attention logits q·K̂ᵀ (unscaled) for queries q [m × d] over positions
  // [0, size()) into out [m × size()]; values at absent positions are ignored
  // by the caller. Methods that store no reconstructible keys (QJL) override
  // this with their score estimator and return false from
  // keys_reconstructible(). While keys are reconstructible the logits are
  // q·K̂ᵀ of view(): the replay computes them from the view itself.
  virtual void key_logits(ConstMatrixRef q, MatrixRef out) const;
  virtual bool keys_reconstructible() const { return true; }

  // Into `out` (cleared first): the rows of view() that may differ from what
  // view() showed when size() was `since` (0 <= since <= size(); 0 = before
  // any token): the rows appended since, [since, size()), and every older row
  // rewritten or evicted since. Lets the replay update its per-row metrics
  // instead of rescanning the cache. The default lists every row, which is
  // always correct; a state overrides it only if it knows exactly which of its
  // rows it writes (finished segments that never change, evictions).
  virtual void changes_since(int since, CacheChanges& out) const;
  // Rows [0, frozen_rows()) of view() (K̂, V̂ and the present mask) will never
  // change again: finished segments. Lets the replay read them once for
  // several later steps. Never decreases, never exceeds size(); default 0.
  virtual int frozen_rows() const { return 0; }
};

// One block (layer, kv head), fed as an inference engine feeds its cache.
class CacheState : public CacheReader {
 public:
  // K, V: [P × d] for positions [0, P); q: the group's prompt queries.
  virtual void prefill(ConstMatrixRef keys, ConstMatrixRef values, const QueryGroup& q) = 0;
  // One decode token at position size(): k, v: [1 × d]; q: the group's queries [1 × d].
  virtual void append(ConstRowRef key, ConstRowRef value, const QueryGroup& q) = 0;
};

// Several kv heads of one layer fed together. A layer-scoped compressor
// (Compressor::Scope::Layer) makes one for all kv heads of a layer, so its
// decisions may span heads (a budget shared by the layer's heads, outliers
// chosen across heads); block-scoped compressors are wrapped per head by
// make_layer_state (layer_state.hpp). Entry h of every span is head h of the
// state (kv head first_head + h of the layer).
class LayerCacheState {
 public:
  virtual ~LayerCacheState() = default;

  virtual int heads() const = 0;
  // keys[h], values[h]: [P × d]; queries[h]: the group of head h.
  virtual void prefill(std::span<const ConstMatrixRef> keys, std::span<const ConstMatrixRef> values,
                       std::span<const QueryGroup> queries) = 0;
  // One decode token of every head: keys[h], values[h]: [1 × d].
  virtual void append(std::span<const ConstRowRef> keys, std::span<const ConstRowRef> values,
                      std::span<const QueryGroup> queries) = 0;
  // Head h's cache; its bits() are that head's share, and the shares of all
  // heads add up to the layer's exact size.
  virtual const CacheReader& head(int h) const = 0;
};

class Compressor {
 public:
  virtual ~Compressor() = default;

  const std::string& method() const { return method_; }
  const std::string& spec() const { return spec_; }  // canonical, round-trippable

  // Block: one state per (layer, kv head), replayed in parallel over heads.
  // Layer: one state per layer holding all its kv heads (new_layer_state).
  enum class Scope { Block, Layer };
  virtual Scope scope() const { return Scope::Block; }

  // Block scope: a state for block ctx (ctx.layer, ctx.kv_head).
  virtual std::unique_ptr<CacheState> new_state(const BlockContext& ctx) const;
  // Layer scope: a state for every kv head of layer ctx.layer (ctx.kv_head is
  // unused).
  virtual std::unique_ptr<LayerCacheState> new_layer_state(const BlockContext& ctx) const;
  virtual std::shared_ptr<const LayerCalibration> calibrate(const LayerView& /*layer*/,
                                                            const BlockContext& /*ctx*/) const {
    return nullptr;
  }
  virtual bool needs_queries() const { return false; }  // score-based methods (H2O, SnapKV)
  virtual bool needs_rope() const { return false; }      // methods that undo RoPE (KVQuant)

  // Set by the registry after construction.
  void set_identity(std::string method, std::string spec) {
    method_ = std::move(method);
    spec_ = std::move(spec);
  }

 private:
  std::string method_;
  std::string spec_;
};

}  // namespace kvlab
