#include "kvlab/model/dump_kv_check.hpp"

#include <algorithm>
#include <cmath>

#include "kvlab/core/error.hpp"
#include "kvlab/io/dump_reader.hpp"
#include "kvlab/model/llama_forward.hpp"

namespace kvlab {

namespace {

double relative(double err, double norm) {
  if (norm == 0.0) return err == 0.0 ? 0.0 : INFINITY;
  return std::sqrt(err / norm);
}

}  // namespace

DumpKvChecker::DumpKvChecker(const DumpReader& dump, const ModelConfig& c, double rtol, int limit)
    : dump_(dump), config_(c), limit_(std::min(limit, dump.info().seq_len)) {
  const DumpInfo& info = dump.info();
  if (info.num_layers != c.num_layers || info.num_kv_heads != c.num_kv_heads || info.head_dim != c.head_dim ||
      info.num_heads != c.num_heads)
    fail("{}: dump shape (layers {}, heads {}, kv heads {}, head_dim {}) does not match the model "
         "(layers {}, heads {}, kv heads {}, head_dim {})",
         info.path, info.num_layers, info.num_heads, info.num_kv_heads, info.head_dim, c.num_layers, c.num_heads,
         c.num_kv_heads, c.head_dim);
  if (!(rtol > 0.0)) fail("K/V check: the tolerance must be positive, found {}", rtol);
  result_.done = true;
  result_.rtol = rtol;
  const auto L = static_cast<std::size_t>(c.num_layers);
  key_err_.assign(L, 0.0);
  key_norm_.assign(L, 0.0);
  value_err_.assign(L, 0.0);
  value_norm_.assign(L, 0.0);
  result_.key_rel.assign(L, 0.0);
  result_.value_rel.assign(L, 0.0);
}

bool DumpKvChecker::due(int fed) const {
  const int upto = std::min(fed, limit_);
  return upto - result_.positions >= std::max(64, result_.positions);
}

void DumpKvChecker::check_until(const LlamaForward& ref, int upto) {
  upto = std::min(upto, limit_);
  const int from = result_.positions;
  if (upto <= from) return;
  const ModelConfig& c = config_;
  for (int layer = 0; layer < c.num_layers; ++layer) {
    const LayerData data = dump_.read_layer(layer, false, upto);
    const auto l = static_cast<std::size_t>(layer);
    for (int j = 0; j < c.num_kv_heads; ++j) {
      const CacheView view = ref.state(layer, j).view();
      for (int which = 0; which < 2; ++which) {
        const Matrix& rec = (which == 0 ? data.keys : data.values)[static_cast<std::size_t>(j)];
        const ConstMatrixRef mine = which == 0 ? view.keys : view.values;
        double err = 0.0, norm = 0.0;
        for (int t = from; t < upto; ++t)
          for (int x = 0; x < c.head_dim; ++x) {
            const double r = rec(t, x), d = static_cast<double>(mine(t, x)) - r;
            err += d * d;
            norm += r * r;
          }
        (which == 0 ? key_err_ : value_err_)[l] += err;
        (which == 0 ? key_norm_ : value_norm_)[l] += norm;
      }
    }
    result_.key_rel[l] = relative(key_err_[l], key_norm_[l]);
    result_.value_rel[l] = relative(value_err_[l], value_norm_[l]);
  }
  result_.positions = upto;
  result_.max_rel = 0.0;
  for (int layer = 0; layer < c.num_layers; ++layer)
    for (int which = 0; which < 2; ++which) {
      const double r = (which == 0 ? result_.key_rel : result_.value_rel)[static_cast<std::size_t>(layer)];
      if (r > result_.max_rel || result_.worst_layer < 0) {
        result_.max_rel = r;
        result_.worst_layer = layer;
        result_.worst_tensor = which == 0 ? "keys" : "values";
      }
    }
  if (!result_.ok()) {
    const DumpInfo& info = dump_.info();
    fail("{}: the reference run's /layers/{}/{} differ from the dump: relative norm {:.3g} over positions [0, {}) "
         "exceeds the tolerance {:.3g}; was the dump recorded from this model ({}) with these tokens? "
         "(--kv-rtol or decode: {{kv_rtol: ...}} sets the tolerance; --no-kv-check or kv_rtol: off skips the check)",
         info.path, result_.worst_layer, result_.worst_tensor, result_.max_rel, upto, result_.rtol,
         info.model.empty() ? "?" : info.model);
  }
}

}  // namespace kvlab
