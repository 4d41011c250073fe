#include "kvlab/io/attention_attrs.hpp"

#include <fmt/format.h>
#include <hdf5.h>

#include <algorithm>
#include <climits>
#include <cmath>

#include "kvlab/io/hdf5_errors.hpp"

namespace kvlab {

AttentionRule DumpInfo::attention(int layer) const {
  AttentionRule r;
  r.scale = attn_scale.value_or(0.0);
  r.softcap = attn_logit_softcap.value_or(0.0);
  if (layer >= 0 && layer < static_cast<int>(layer_attention.size()))
    r.window = layer_attention[static_cast<std::size_t>(layer)].sliding_window;
  return r;
}

std::optional<RopeInfo> DumpInfo::rope_of(int layer) const {
  std::optional<RopeInfo> r = rope;
  if (layer < 0 || layer >= static_cast<int>(layer_attention.size())) return r;
  const LayerAttention& la = layer_attention[static_cast<std::size_t>(layer)];
  if (!la.rope_inv_freq.empty()) {
    if (!r) {
      r = RopeInfo{0.0, rope_style};
      r->rotary_dim = rotary_dim;
    }
    r->inv_freq = la.rope_inv_freq;
  }
  if (r && la.rope_attention_scaling) r->attention_scaling = *la.rope_attention_scaling;
  return r;
}

bool DumpInfo::describes_attention() const {
  if (attn_scale || attn_logit_softcap || rotary_dim > 0) return true;
  if (rope && (!rope->inv_freq.empty() || rope->attention_scaling != 1.0)) return true;
  for (const LayerAttention& la : layer_attention)
    if (la.sliding_window > 0 || !la.rope_inv_freq.empty() || la.rope_attention_scaling) return true;
  return false;
}

namespace io {

namespace {

// A positive finite float attribute of `object` (path `where`), or nullopt.
std::optional<double> positive_attribute(const CheckedFile& file, hid_t object, const std::string& where,
                                         const char* name) {
  const auto v = read_float_attribute(object, name, file.path(), where);
  if (v && !(std::isfinite(*v) && *v > 0))
    file.bad(fmt::format("{} attribute '{}': expected a positive finite number, found {}",
                         where == "/" ? std::string("root") : where, name, *v));
  return v;
}

// /rope_inv_freq or /layers/L/rope_inv_freq: float [rotary_dim/2], finite, > 0.
std::vector<double> read_inv_freq(const CheckedFile& file, const std::string& path, int rotary_dim) {
  DatasetHandle ds = file.open_dataset(path);
  DatatypeHandle type(H5Dget_type(ds.get()));
  if (H5Tget_class(type.get()) != H5T_FLOAT)
    file.bad(fmt::format("{}: expected float64 elements, found {}", path, describe_type(type.get())));
  const std::vector<hsize_t> shape = dataset_shape(ds.get());
  const auto half = static_cast<hsize_t>(rotary_dim / 2);
  if (shape != std::vector<hsize_t>{half})
    file.bad(fmt::format("{}: expected shape [{}] ([rotary_dim/2], rotary_dim {}), found {}", path, half, rotary_dim,
                         shape_to_string(shape)));
  std::vector<double> w(static_cast<std::size_t>(half));
  if (H5Dread(ds.get(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, w.data()) < 0)
    file.bad(fmt::format("{}: read failed, file truncated or corrupt ({})", path, last_hdf5_error()));
  for (std::size_t i = 0; i < w.size(); ++i)
    if (!(std::isfinite(w[i]) && w[i] > 0))
      file.bad(fmt::format("{}: expected positive finite frequencies, found {} at [{}]", path, w[i], i));
  return w;
}

}  // namespace

void read_attention_attributes(const CheckedFile& file, DumpInfo& info) {
  const hid_t f = file.get();
  info.attn_scale = positive_attribute(file, f, "/", "attn_scale");
  info.attn_logit_softcap = positive_attribute(file, f, "/", "attn_logit_softcap");
  const std::optional<double> root_scaling = positive_attribute(file, f, "/", "rope_attention_scaling");
  if (const auto style = read_string_attribute(f, "rope_style", file.path(), "/")) info.rope_style = parse_rope_style(*style);

  const auto rd = read_int_attribute(f, "rotary_dim", file.path(), "/");
  if (rd && (*rd < 2 || *rd > info.head_dim || *rd % 2 != 0))
    file.bad(fmt::format("root attribute 'rotary_dim': expected an even integer in [2, head_dim {}], found {}",
                         info.head_dim, *rd));
  info.rotary_dim = rd ? static_cast<int>(*rd) : 0;
  const int rotary = rd ? info.rotary_dim : info.head_dim;
  if (path_exists(f, "/rope_inv_freq")) {
    if (!info.rope) info.rope = RopeInfo{0.0, info.rope_style};
    info.rope->inv_freq = read_inv_freq(file, "/rope_inv_freq", rotary);
  }
  if (info.rope) {
    info.rope->rotary_dim = info.rotary_dim;
    info.rope->attention_scaling = root_scaling.value_or(1.0);
  }

  info.layer_attention.assign(static_cast<std::size_t>(info.num_layers), {});
  for (int layer = 0; layer < info.num_layers; ++layer) {
    DumpInfo::LayerAttention& la = info.layer_attention[static_cast<std::size_t>(layer)];
    const std::string group = fmt::format("/layers/{}", layer);
    GroupHandle g(H5Gopen2(f, group.c_str(), H5P_DEFAULT));
    if (!g) file.bad(fmt::format("{}: expected a group ({})", group, last_hdf5_error()));
    if (const auto w = read_int_attribute(g.get(), "sliding_window", file.path(), group)) {
      if (*w < 1)
        file.bad(fmt::format("{} attribute 'sliding_window': expected an integer >= 1, found {}", group, *w));
      la.sliding_window = static_cast<int>(std::min<std::int64_t>(*w, INT_MAX));  // wider than any dump: none
    }
    la.rope_attention_scaling = positive_attribute(file, g.get(), group, "rope_attention_scaling");
    const std::string inv = layer_path(layer, "rope_inv_freq");
    if (path_exists(f, inv)) la.rope_inv_freq = read_inv_freq(file, inv, rotary);
  }
}

}  // namespace io
}  // namespace kvlab
