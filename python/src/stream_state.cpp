// Compressor(spec) and its streaming states: the contract of
// compressors/compressor.hpp for a decoding loop. A State feeds one
// LayerCacheState (make_layer_state, as the replay and the model do): one kv
// head for new_state (arrays without a head axis), every kv head of a layer
// for new_layer_state. Inputs are mapped without copies and the GIL is
// released while the compressor works. States are single-threaded (the
// contract): a call while another thread is inside the same State raises
// RuntimeError instead of waiting (waiting with the GIL held could deadlock).
#include <pybind11/stl.h>

#include <atomic>
#include <mutex>

#include "arrays.hpp"
#include "bindings.hpp"
#include "context.hpp"
#include "kvlab/compressors/layer_state.hpp"
#include "kvlab/compressors/registry.hpp"
#include "kvlab/core/error.hpp"

namespace kvlab::python {

namespace {

class PyCompressor {
 public:
  explicit PyCompressor(const std::string& spec) {
    const Registry& reg = Registry::global();
    resolved_ = reg.resolve(spec);
    compressor_ = reg.build(resolved_);
  }
  const Compressor& get() const { return *compressor_; }
  std::shared_ptr<const Compressor> shared() const { return compressor_; }
  const ResolvedSpec& resolved() const { return resolved_; }

 private:
  ResolvedSpec resolved_;
  std::shared_ptr<const Compressor> compressor_;
};

class PyState {
 public:
  // heads == 1 && single: the one-head API (new_state).
  PyState(std::shared_ptr<const Compressor> compressor, const BlockContext& ctx, int first_head, int heads,
          bool single)
      : compressor_(std::move(compressor)), ctx_(ctx), first_head_(first_head), heads_(heads), single_(single) {
    state_ = make_layer_state(*compressor_, ctx_, first_head_, heads_);
  }

  void prefill(py::handle keys, py::handle values, py::handle queries) {
    const int d = ctx_.head_dim, p = ctx_.prompt_len, hq = heads_ * ctx_.group_size;
    const char* axes = single_ ? "[P, d]" : "[kv_heads, P, d]";
    const FloatTensor k(keys, "keys", single_ ? 2 : 3, axes), v(values, "values", single_ ? 2 : 3, axes);
    std::optional<FloatTensor> q;
    if (!queries.is_none()) q.emplace(queries, "queries", 3, single_ ? "[group_size, P, d]" : "[query_heads, P, d]");
    check_needs(*compressor_, ctx_, q.has_value());
    if (single_) {
      expect_shape(k, {p, d});
      expect_shape(v, {p, d});
    } else {
      expect_shape(k, {heads_, p, d});
      expect_shape(v, {heads_, p, d});
    }
    if (q) expect_shape(*q, {hq, p, d});

    std::vector<ConstMatrixRef> kr, vr;
    std::vector<QueryGroup> qr(static_cast<std::size_t>(heads_));
    for (int h = 0; h < heads_; ++h) {
      kr.emplace_back(k.matrix(single_ ? 0 : h));
      vr.emplace_back(v.matrix(single_ ? 0 : h));
      if (q)
        for (int j = 0; j < ctx_.group_size; ++j) qr[static_cast<std::size_t>(h)].emplace_back(q->matrix(h * ctx_.group_size + j));
    }
    const auto lock = claim();
    py::gil_scoped_release release;
    k.check_finite();
    v.check_finite();
    if (q) q->check_finite();
    if (prefilled_) fail("prefill: the state already holds {} tokens (prefill once, then append)", size_.load());
    state_->prefill(kr, vr, qr);
    prefilled_ = true;
    size_ = p;
  }

  void append(py::handle key, py::handle value, py::handle queries) {
    const int d = ctx_.head_dim, hq = heads_ * ctx_.group_size;
    const char* axes = single_ ? "[d]" : "[kv_heads, d]";
    const FloatTensor k(key, "key", single_ ? 1 : 2, axes), v(value, "value", single_ ? 1 : 2, axes);
    std::optional<FloatTensor> q;
    if (!queries.is_none()) q.emplace(queries, "queries", 2, single_ ? "[group_size, d]" : "[query_heads, d]");
    if (single_) {
      expect_shape(k, {d});
      expect_shape(v, {d});
    } else {
      expect_shape(k, {heads_, d});
      expect_shape(v, {heads_, d});
    }
    if (q) expect_shape(*q, {hq, d});
    else if (compressor_->needs_queries()) check_needs(*compressor_, ctx_, false);

    const auto lock = claim();
    py::gil_scoped_release release;
    k.check_finite();
    v.check_finite();
    if (q) q->check_finite();
    if (!prefilled_) fail("append before prefill: feed the prompt with prefill() first");
    if (size_.load() >= ctx_.max_tokens)
      fail("append: the state is full (max_tokens = {}); make it with a larger max_tokens", ctx_.max_tokens);
    if (heads_ == 1) {  // the per-token path of new_state: no heap allocation
      const ConstRowRef kr(k.row(0)), vr(v.row(0));
      QueryGroup qr;
      if (q)
        for (int j = 0; j < ctx_.group_size; ++j) qr.emplace_back(q->row_matrix(j));
      state_->append(std::span(&kr, 1), std::span(&vr, 1), std::span(&qr, 1));
    } else {
      std::vector<ConstRowRef> kr, vr;
      std::vector<QueryGroup> qr(static_cast<std::size_t>(heads_));
      for (int h = 0; h < heads_; ++h) {
        kr.emplace_back(k.row(h));
        vr.emplace_back(v.row(h));
        if (q)
          for (int j = 0; j < ctx_.group_size; ++j)
            qr[static_cast<std::size_t>(h)].emplace_back(q->row_matrix(h * ctx_.group_size + j));
      }
      state_->append(kr, vr, qr);
    }
    ++size_;
  }

  // (keys, values, present): copies of the current reconstruction. keys is
  // None when the method stores no reconstructible keys (use logits()).
  py::tuple view(std::optional<int> head) const {
    const std::vector<int> heads = selected(head);
    const bool squeeze = single_ || head.has_value();
    const auto lock = claim();
    const int t = size_, d = ctx_.head_dim, n = static_cast<int>(heads.size());
    const bool keys_ok = state_->head(heads.front()).keys_reconstructible();
    std::vector<py::ssize_t> shape = squeeze ? std::vector<py::ssize_t>{t, d} : std::vector<py::ssize_t>{n, t, d};
    py::array_t<float> keys = new_float_array(shape), values = new_float_array(shape);
    py::array_t<bool> present = new_bool_array(squeeze ? std::vector<py::ssize_t>{t} : std::vector<py::ssize_t>{n, t});
    float *kp = keys.mutable_data(), *vp = values.mutable_data();
    bool* pp = present.mutable_data();
    {
      py::gil_scoped_release release;
      for (int i = 0; i < n; ++i) {
        const CacheView cv = state_->head(heads[static_cast<std::size_t>(i)]).view();
        const std::size_t off = static_cast<std::size_t>(i) * static_cast<std::size_t>(t) * static_cast<std::size_t>(d);
        Eigen::Map<Matrix>(kp + off, t, d) = cv.keys;
        Eigen::Map<Matrix>(vp + off, t, d) = cv.values;
        for (int j = 0; j < t; ++j) pp[static_cast<std::size_t>(i) * static_cast<std::size_t>(t) + static_cast<std::size_t>(j)] = cv.is_present(j);
      }
    }
    return py::make_tuple(keys_ok ? py::object(keys) : py::object(py::none()), values, present);
  }

  py::dict bits(std::optional<int> head) const {
    BitCount total;
    const auto lock = claim();
    for (int h : selected(head)) total += state_->head(h).bits();
    return bits_dict(total);
  }

  // q·K̂ᵀ (unscaled) for queries q [m × d] over the cache of `head`:
  // [m × size]; entries at absent positions are meaningless (mask them).
  py::array_t<float> logits(py::handle queries, int head) const {
    const int h = selected(head).front();
    const FloatTensor q(queries, "queries", 2, "[m, d]");
    expect_shape(q, {-1, ctx_.head_dim});
    const auto lock = claim();
    const int t = size_;
    py::array_t<float> out = new_float_array({q.dim(0), t});
    if (t == 0 || q.dim(0) == 0) return out;
    Eigen::Map<Matrix> o(out.mutable_data(), q.dim(0), t);
    py::gil_scoped_release release;
    state_->head(h).key_logits(q.matrix(), o);
    return out;
  }

  int size() const { return size_; }
  int heads() const { return heads_; }
  const BlockContext& context() const { return ctx_; }
  int first_head() const { return first_head_; }
  bool single() const { return single_; }
  const Compressor& compressor() const { return *compressor_; }

 private:
  // Called with the GIL held; never waits.
  std::unique_lock<std::mutex> claim() const {
    std::unique_lock<std::mutex> lock(mutex_, std::try_to_lock);
    if (!lock.owns_lock())
      throw std::runtime_error("kvlab.State is in use by another thread (a State is fed by one thread at a time)");
    return lock;
  }

  std::vector<int> selected(std::optional<int> head) const {
    if (!head) {
      std::vector<int> all(static_cast<std::size_t>(heads_));
      for (int h = 0; h < heads_; ++h) all[static_cast<std::size_t>(h)] = h;
      return all;
    }
    if (*head < 0 || *head >= heads_) fail("head {} is out of range (the state holds {} kv heads)", *head, heads_);
    return {*head};
  }

  std::shared_ptr<const Compressor> compressor_;
  BlockContext ctx_;
  int first_head_, heads_;
  bool single_;
  std::unique_ptr<LayerCacheState> state_;
  std::atomic<int> size_ = 0;  // written under the claim, read by len() without it
  bool prefilled_ = false;
  mutable std::mutex mutex_;
};

ContextArgs context_args(int layer, int num_layers, int num_kv_heads, int head_dim, int group_size, int prompt_len,
                         int max_tokens, std::uint64_t seed, std::optional<double> rope_theta,
                         std::optional<std::string> rope_style, const std::optional<AttentionRule>& attention) {
  return ContextArgs{layer,      num_layers,           num_kv_heads, head_dim, group_size,
                     prompt_len, max_tokens,           seed,         rope_theta, std::move(rope_style),
                     attention.value_or(AttentionRule{})};
}

void attach(BlockContext& ctx, const Compressor& c, const std::optional<Calibration>& cal) {
  if (!cal) return;
  if (cal->spec != c.spec() || cal->layer != ctx.layer || cal->num_kv_heads != ctx.num_kv_heads ||
      cal->head_dim != ctx.head_dim)
    fail("calibration: made by '{}' for layer {} ({} kv heads, d={}), but this state is '{}' on layer {} ({} kv "
         "heads, d={})",
         cal->spec, cal->layer, cal->num_kv_heads, cal->head_dim, c.spec(), ctx.layer, ctx.num_kv_heads, ctx.head_dim);
  ctx.calibration = cal->data;
}

}  // namespace

// Used by compress.cpp: the same calibration a replay computes for a layer.
Calibration calibrate_layer(const Compressor& c, const BlockContext& ctx, const LayerView& layer) {
  Calibration cal;
  cal.data = c.calibrate(layer, ctx);
  cal.spec = c.spec();
  cal.layer = ctx.layer;
  cal.num_kv_heads = ctx.num_kv_heads;
  cal.head_dim = ctx.head_dim;
  return cal;
}

void bind_states(py::module_& m) {
  using namespace py::literals;
  py::class_<Calibration>(m, "Calibration",
                          "A compressor's per-layer calibration (e.g. KVQuant's levels), from Compressor.calibrate(); "
                          "pass it to new_state/new_layer_state of the same compressor and layer.")
      .def_property_readonly("empty", [](const Calibration& c) { return c.data == nullptr; },
                             "True when the method calibrates nothing")
      .def("__repr__", [](const Calibration& c) {
        return fmt::format("<kvlab.Calibration of '{}' for layer {}{}>", c.spec, c.layer, c.data ? "" : " (empty)");
      });

  py::class_<PyState>(m, "State",
                      "A streaming compressed cache: prefill once, then append one token at a time; view() and bits() "
                      "at any point. Made by Compressor.new_state / new_layer_state.")
      .def("prefill", &PyState::prefill, "keys"_a, "values"_a, "queries"_a = py::none(),
           "The prompt, once: keys/values [prompt_len, d] ([kv_heads, prompt_len, d] for a layer state); queries "
           "[group_size, prompt_len, d] ([query_heads, ...]) for methods that score tokens by attention.")
      .def("append", &PyState::append, "key"_a, "value"_a, "queries"_a = py::none(),
           "One decoded token: key/value [d] ([kv_heads, d]); queries [group_size, d] ([query_heads, d]).")
      .def("view", &PyState::view, "head"_a = py::none(),
           "(keys, values, present): copies of the reconstruction [T, d] ([kv_heads, T, d]) and the bool mask "
           "of tokens still cached; keys is None when the method keeps no reconstructible keys (use logits).")
      .def("bits", &PyState::bits, "head"_a = py::none(),
           "The exact size now, by component (codes, metadata, sparse, lowrank, fp16, index, total).")
      .def("logits", &PyState::logits, "queries"_a, "head"_a = 0,
           "q·K̂ᵀ (unscaled) for queries [m, d] over the cache: [m, T]; ignore positions where present is False.")
      .def("__len__", &PyState::size)
      .def_property_readonly("size", &PyState::size, "tokens fed so far")
      .def_property_readonly("heads", &PyState::heads, "kv heads the state holds")
      .def_property_readonly("head_dim", [](const PyState& s) { return s.context().head_dim; })
      .def_property_readonly("prompt_len", [](const PyState& s) { return s.context().prompt_len; })
      .def_property_readonly("max_tokens", [](const PyState& s) { return s.context().max_tokens; })
      .def_property_readonly("layer", [](const PyState& s) { return s.context().layer; })
      .def_property_readonly("spec", [](const PyState& s) { return s.compressor().spec(); })
      .def("__repr__", [](const PyState& s) {
        const BlockContext& c = s.context();
        return fmt::format("<kvlab.State '{}' layer {} {} d={} tokens {}/{}>", s.compressor().spec(), c.layer,
                           s.single() ? fmt::format("kv head {}", s.first_head()) : fmt::format("{} kv heads", s.heads()),
                           c.head_dim, s.size(), c.max_tokens);
      });

  py::class_<PyCompressor>(m, "Compressor", "A compressor built from a spec or preset (immutable, thread-safe).")
      .def(py::init<const std::string&>(), "spec"_a)
      .def_property_readonly("spec", [](const PyCompressor& c) { return c.get().spec(); }, "canonical spec")
      .def_property_readonly("method", [](const PyCompressor& c) { return c.get().method(); })
      .def_property_readonly("family", [](const PyCompressor& c) { return c.resolved().method->family; })
      .def_property_readonly("params", [](const PyCompressor& c) { return c.resolved().values.applicable(); },
                             "every parameter that applies, as canonical text")
      .def_property_readonly("scope", [](const PyCompressor& c) {
        return c.get().scope() == Compressor::Scope::Layer ? "layer" : "block";
      }, "'block': one state per kv head; 'layer': one state for all kv heads of a layer (new_layer_state)")
      .def_property_readonly("needs_queries", [](const PyCompressor& c) { return c.get().needs_queries(); })
      .def_property_readonly("needs_rope", [](const PyCompressor& c) { return c.get().needs_rope(); })
      .def(
          "new_state",
          [](const PyCompressor& c, int head_dim, int prompt_len, int max_tokens, int layer, int kv_head,
             std::uint64_t seed, int num_layers, std::optional<int> num_kv_heads, int group_size,
             std::optional<double> rope_theta, std::optional<std::string> rope_style,
             std::optional<AttentionRule> attention, std::optional<Calibration> calibration) {
            if (c.get().scope() == Compressor::Scope::Layer)
              fail("compressor '{}' keeps one state for all kv heads of a layer: use new_layer_state()", c.get().spec());
            const int heads = num_kv_heads.value_or(std::max(1, kv_head + 1));
            if (kv_head < 0 || kv_head >= heads)
              fail("kv_head {} is out of range (num_kv_heads = {})", kv_head, heads);
            BlockContext ctx = make_context(context_args(layer, num_layers, heads, head_dim, group_size, prompt_len,
                                                         max_tokens, seed, rope_theta, std::move(rope_style),
                                                         attention));
            ctx.kv_head = kv_head;
            check_needs(c.get(), ctx, true);
            attach(ctx, c.get(), calibration);
            return std::make_unique<PyState>(c.shared(), ctx, kv_head, 1, true);
          },
          "head_dim"_a, "prompt_len"_a, "max_tokens"_a, "layer"_a = 0, "kv_head"_a = 0, "seed"_a = 0, py::kw_only(),
          "num_layers"_a = 1, "num_kv_heads"_a = py::none(), "group_size"_a = 1, "rope_theta"_a = py::none(),
          "rope_style"_a = py::none(), "attention"_a = py::none(), "calibration"_a = py::none())
      .def(
          "new_layer_state",
          [](const PyCompressor& c, int num_kv_heads, int head_dim, int prompt_len, int max_tokens, int layer,
             std::uint64_t seed, int num_layers, int group_size, std::optional<double> rope_theta,
             std::optional<std::string> rope_style, std::optional<AttentionRule> attention,
             std::optional<Calibration> calibration) {
            BlockContext ctx = make_context(context_args(layer, num_layers, num_kv_heads, head_dim, group_size,
                                                         prompt_len, max_tokens, seed, rope_theta,
                                                         std::move(rope_style), attention));
            check_needs(c.get(), ctx, true);
            attach(ctx, c.get(), calibration);
            return std::make_unique<PyState>(c.shared(), ctx, 0, num_kv_heads, false);
          },
          "num_kv_heads"_a, "head_dim"_a, "prompt_len"_a, "max_tokens"_a, "layer"_a = 0, "seed"_a = 0, py::kw_only(),
          "num_layers"_a = 1, "group_size"_a = 1, "rope_theta"_a = py::none(), "rope_style"_a = py::none(),
          "attention"_a = py::none(), "calibration"_a = py::none())
      .def(
          "calibrate",
          [](const PyCompressor& c, py::handle keys, py::handle values, py::handle queries, int layer, int num_layers,
             std::uint64_t seed, std::optional<double> rope_theta, std::optional<std::string> rope_style,
             std::optional<AttentionRule> attention) {
            const FloatTensor k(keys, "keys", 3, "[kv_heads, T, d]"), v(values, "values", 3, "[kv_heads, T, d]");
            expect_shape(v, {k.dim(0), k.dim(1), k.dim(2)});
            std::optional<FloatTensor> q;
            if (!queries.is_none()) {
              q.emplace(queries, "queries", 3, "[query_heads, T, d]");
              expect_shape(*q, {-1, k.dim(1), k.dim(2)});
              if (q->dim(0) % k.dim(0) != 0)
                fail("queries: {} query heads is not a multiple of {} kv heads", q->dim(0), k.dim(0));
            }
            const int group = q ? q->dim(0) / k.dim(0) : 1;
            const BlockContext ctx = make_context(context_args(layer, num_layers, k.dim(0), k.dim(2), group, k.dim(1),
                                                               k.dim(1), seed, rope_theta, std::move(rope_style),
                                                               attention));
            check_needs(c.get(), ctx, q.has_value());
            std::vector<Matrix> km, vm, qm;
            for (int h = 0; h < k.dim(0); ++h) {
              km.emplace_back(k.matrix(h));
              vm.emplace_back(v.matrix(h));
            }
            if (q)
              for (int h = 0; h < q->dim(0); ++h) qm.emplace_back(q->matrix(h));
            py::gil_scoped_release release;
            k.check_finite();
            v.check_finite();
            if (q) q->check_finite();
            return calibrate_layer(c.get(), ctx, LayerView{km, vm, qm});
          },
          "keys"_a, "values"_a, "queries"_a = py::none(), py::kw_only(), "layer"_a = 0, "num_layers"_a = 1,
          "seed"_a = 0, "rope_theta"_a = py::none(), "rope_style"_a = py::none(), "attention"_a = py::none())
      .def("__repr__", [](const PyCompressor& c) { return fmt::format("kvlab.Compressor('{}')", c.get().spec()); });
}

}  // namespace kvlab::python
