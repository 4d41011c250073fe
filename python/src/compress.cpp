// compress(): one layer's [kv_heads, T, d] tensors through a compressor,
// exactly as `kvlab run` replays a layer of a dump: the layer's tensors as
// owned matrices (the replay's LayerData; also what Compressor::calibrate
// takes), calibration, then per work item (one kv head, or the whole layer
// for layer-scoped methods) make_layer_state + replay_unit in parallel.
// Returns the final reconstruction, the present mask and the exact bits.
#include <omp.h>
#include <pybind11/stl.h>

#include <exception>

#include "arrays.hpp"
#include "bindings.hpp"
#include "context.hpp"
#include "kvlab/compressors/layer_state.hpp"
#include "kvlab/compressors/registry.hpp"
#include "kvlab/core/error.hpp"
#include "kvlab/replay/replay_block.hpp"

namespace kvlab::python {

Calibration calibrate_layer(const Compressor& c, const BlockContext& ctx, const LayerView& layer);

namespace {

// Copies the heads of `t` into owned matrices, in parallel; false if any
// value is not finite.
bool copy_heads(const FloatTensor& t, std::vector<Matrix>& out, int threads) {
  const int n = t.dim(0);
  out.resize(static_cast<std::size_t>(n));
  int bad = 0;
#pragma omp parallel for schedule(static) num_threads(threads) reduction(+ : bad)
  for (int h = 0; h < n; ++h) bad += copy_finite(t.matrix(h), out[static_cast<std::size_t>(h)]) ? 0 : 1;
  return bad == 0;
}

struct WorkItem {
  int first_head = 0, heads = 1;
};

py::dict compress(const std::string& spec, py::handle keys, py::handle values, std::optional<int> prompt_len,
                  py::handle queries, std::uint64_t seed, int layer, int num_layers, std::optional<double> rope_theta,
                  std::optional<std::string> rope_style, std::optional<AttentionRule> attention,
                  std::optional<int> threads_arg) {
  const std::unique_ptr<Compressor> compressor = Registry::global().build(spec);
  const FloatTensor k(keys, "keys", 3, "[kv_heads, T, d]"), v(values, "values", 3, "[kv_heads, T, d]");
  const int H = k.dim(0), T = k.dim(1), d = k.dim(2);
  if (H < 1 || T < 1 || d < 1) fail("keys: expected a non-empty [kv_heads, T, d] array, found [{}, {}, {}]", H, T, d);
  expect_shape(v, {H, T, d});
  std::optional<FloatTensor> q;
  if (!queries.is_none()) {
    q.emplace(queries, "queries", 3, "[query_heads, T, d]");
    expect_shape(*q, {-1, T, d});
    if (q->dim(0) < 1 || q->dim(0) % H != 0)
      fail("queries: {} query heads is not a positive multiple of {} kv heads", q->dim(0), H);
  }
  const int g = q ? q->dim(0) / H : 1;
  const int P = prompt_len.value_or(T);
  if (P < 1 || P > T) fail("prompt_len must be in [1, T = {}], found {}", T, P);
  const int threads = threads_arg.value_or(omp_get_max_threads());
  if (threads < 1) fail("threads must be positive, found {}", threads);

  BlockContext ctx = make_context(
      ContextArgs{layer, num_layers, H, d, g, P, T, seed, rope_theta, rope_style, attention.value_or(AttentionRule{})});
  check_needs(*compressor, ctx, q.has_value());

  py::array_t<float> keys_out = new_float_array({H, T, d}), values_out = new_float_array({H, T, d});
  py::array_t<bool> present_out = new_bool_array({H, T});
  float *kp = keys_out.mutable_data(), *vp = values_out.mutable_data();
  bool* pp = present_out.mutable_data();
  std::vector<BitCount> head_bits(static_cast<std::size_t>(H));
  std::vector<char> keys_ok(static_cast<std::size_t>(H), 1);
  {
    py::gil_scoped_release release;
    std::vector<Matrix> km, vm, qm;
    if (!copy_heads(k, km, threads)) k.check_finite();  // names the first bad value
    if (!copy_heads(v, vm, threads)) v.check_finite();
    if (q && !copy_heads(*q, qm, threads)) q->check_finite();
    ctx.calibration = calibrate_layer(*compressor, ctx, LayerView{km, vm, qm}).data;

    std::vector<WorkItem> items;
    if (compressor->scope() == Compressor::Scope::Layer)
      items.push_back({0, H});
    else
      for (int h = 0; h < H; ++h) items.push_back({h, 1});
    const int decode_steps = T - P;
    const std::vector<int> eval_steps = evaluation_steps(decode_steps, 0);  // measuring never changes a state
    const std::size_t head_size = static_cast<std::size_t>(T) * static_cast<std::size_t>(d);
    std::vector<std::exception_ptr> errors(items.size());
    const int num_items = static_cast<int>(items.size());
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
    for (int i = 0; i < num_items; ++i) {
      const WorkItem& item = items[static_cast<std::size_t>(i)];
      try {
        UnitInput unit;
        unit.layer = layer;
        unit.first_head = item.first_head;
        unit.prompt_len = P;
        unit.decode_steps = decode_steps;
        for (int h = item.first_head; h < item.first_head + item.heads; ++h) {
          const std::span<const Matrix> group =
              qm.empty() ? std::span<const Matrix>()
                         : std::span<const Matrix>(qm).subspan(static_cast<std::size_t>(h * g), static_cast<std::size_t>(g));
          unit.heads.push_back(HeadInput{km[static_cast<std::size_t>(h)], vm[static_cast<std::size_t>(h)], group});
        }
        std::unique_ptr<LayerCacheState> state = make_layer_state(*compressor, ctx, item.first_head, item.heads);
        replay_unit(*state, unit, eval_steps, false);
        for (int j = 0; j < item.heads; ++j) {
          const std::size_t h = static_cast<std::size_t>(item.first_head + j);
          const CacheReader& head = state->head(j);
          const CacheView view = head.view();
          Eigen::Map<Matrix>(kp + h * head_size, T, d) = view.keys;
          Eigen::Map<Matrix>(vp + h * head_size, T, d) = view.values;
          for (int t = 0; t < T; ++t) pp[h * static_cast<std::size_t>(T) + static_cast<std::size_t>(t)] = view.is_present(t);
          head_bits[h] = head.bits();
          keys_ok[h] = head.keys_reconstructible() ? 1 : 0;
        }
      } catch (...) {
        errors[static_cast<std::size_t>(i)] = std::current_exception();
      }
    }
    for (const std::exception_ptr& e : errors)  // the first failing item, as the replay reports it
      if (e) std::rethrow_exception(e);
  }

  BitCount total;
  py::list per_head;
  for (const BitCount& b : head_bits) {
    total += b;
    per_head.append(bits_dict(b));
  }
  const bool reconstructible = keys_ok.front() != 0;
  py::dict out;
  out["keys"] = reconstructible ? py::object(keys_out) : py::object(py::none());
  out["values"] = values_out;
  out["present"] = present_out;
  out["bits"] = bits_dict(total);
  out["head_bits"] = per_head;
  out["spec"] = compressor->spec();
  out["prompt_len"] = P;
  return out;
}

}  // namespace

void bind_compress(py::module_& m) {
  using namespace py::literals;
  m.def("compress", &compress, "spec"_a, "keys"_a, "values"_a, "prompt_len"_a = py::none(), "queries"_a = py::none(),
        "seed"_a = 0, py::kw_only(), "layer"_a = 0, "num_layers"_a = 1, "rope_theta"_a = py::none(),
        "rope_style"_a = py::none(), "attention"_a = py::none(), "threads"_a = py::none());
}

}  // namespace kvlab::python
