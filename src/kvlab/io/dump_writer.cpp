#include "kvlab/io/dump_writer.hpp"

#include <fmt/format.h>

#include <cmath>

#include "kvlab/core/error.hpp"
#include "kvlab/core/fp16.hpp"
#include "kvlab/io/hdf5_errors.hpp"

namespace kvlab {

using namespace kvlab::io;

DumpWriter::DumpWriter(const std::string& path, const DumpInfo& info, DumpWriteOptions options)
    : path_(path), info_(info), options_(options) {
  silence_hdf5_errors();
  info_.path = path;
  if (info.num_layers <= 0 || info.num_heads <= 0 || info.num_kv_heads <= 0 || info.head_dim <= 0 ||
      info.seq_len <= 0 || info.prompt_len <= 0)
    fail("{}: cannot write a dump with a non-positive shape (layers {}, heads {}, kv heads {}, head_dim {}, "
         "seq_len {}, prompt_len {})",
         path, info.num_layers, info.num_heads, info.num_kv_heads, info.head_dim, info.seq_len, info.prompt_len);
  if (info.num_heads % info.num_kv_heads != 0)
    fail("{}: num_heads ({}) must be a multiple of num_kv_heads ({})", path, info.num_heads, info.num_kv_heads);
  if (info.prompt_len > info.seq_len)
    fail("{}: prompt_len ({}) exceeds seq_len ({})", path, info.prompt_len, info.seq_len);
  if (!info.layer_attention.empty() && static_cast<int>(info.layer_attention.size()) != info.num_layers)
    fail("{}: the attention description has {} layer entries for {} layers", path, info.layer_attention.size(),
         info.num_layers);

  // The HDF5 1.8 object format (default "earliest" bounds) keeps files
  // readable by every h5py/HDF5 version.
  file_ = FileHandle(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
  if (!file_) fail_file("{}: cannot create HDF5 file ({})", path, last_hdf5_error());
  half_type_ = make_float16_type();
  const hid_t f = file_.get();
  write_string_attribute(f, "format", "kvdump", path);
  write_int_attribute(f, "version", 1, path);
  write_int_attribute(f, "num_layers", info.num_layers, path);
  write_int_attribute(f, "num_heads", info.num_heads, path);
  write_int_attribute(f, "num_kv_heads", info.num_kv_heads, path);
  write_int_attribute(f, "head_dim", info.head_dim, path);
  write_int_attribute(f, "prompt_len", info.prompt_len, path);
  if (!info.model.empty()) write_string_attribute(f, "model", info.model, path);
  if (!info.text.empty()) write_string_attribute(f, "text", info.text, path);
  write_attention_description();
  GroupHandle layers(H5Gcreate2(f, "/layers", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  if (!layers) fail_file("{}: cannot create group /layers ({})", path, last_hdf5_error());
  written_.assign(static_cast<std::size_t>(info.num_layers), false);
}

DumpWriter::~DumpWriter() = default;  // handles close in reverse order of declaration

namespace {

// A float64 vector dataset (the RoPE frequencies).
void write_double_dataset(hid_t parent, const std::string& path, const std::vector<double>& v, const std::string& file) {
  const hsize_t dims[1] = {v.size()};
  DataspaceHandle space(H5Screate_simple(1, dims, nullptr));
  DatasetHandle ds(H5Dcreate2(parent, path.c_str(), H5T_IEEE_F64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT,
                              H5P_DEFAULT));
  if (!ds || H5Dwrite(ds.get(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()) < 0)
    fail_file("{}: cannot write {} ({})", file, path, last_hdf5_error());
}

}  // namespace

// The root half of the attention description (docs/dump-format.md, "Attention
// and RoPE"), exactly what io/attention_attrs.cpp reads back; the per-layer
// half goes with each layer's group.
void DumpWriter::write_attention_description() {
  const hid_t f = file_.get();
  const RopeStyle style = info_.rope ? info_.rope->style : info_.rope_style;
  if (info_.rope && info_.rope->theta > 0) write_float_attribute(f, "rope_theta", info_.rope->theta, path_);
  if (style != RopeStyle::None) write_string_attribute(f, "rope_style", to_string(style), path_);
  if (info_.attn_scale) write_float_attribute(f, "attn_scale", *info_.attn_scale, path_);
  if (info_.attn_logit_softcap) write_float_attribute(f, "attn_logit_softcap", *info_.attn_logit_softcap, path_);
  const int rotary_dim = info_.rotary_dim > 0 ? info_.rotary_dim : (info_.rope ? info_.rope->rotary_dim : 0);
  if (rotary_dim > 0) write_int_attribute(f, "rotary_dim", rotary_dim, path_);
  if (info_.rope && info_.rope->attention_scaling != 1.0)
    write_float_attribute(f, "rope_attention_scaling", info_.rope->attention_scaling, path_);
  if (info_.rope && !info_.rope->inv_freq.empty()) write_double_dataset(f, "/rope_inv_freq", info_.rope->inv_freq, path_);
}

void DumpWriter::close() {
  if (!file_) return;
  for (int layer = 0; layer < info_.num_layers; ++layer)
    if (!written_[static_cast<std::size_t>(layer)])
      fail("{}: layer {} was never written (the dump would be invalid)", path_, layer);
  if (H5Fflush(file_.get(), H5F_SCOPE_GLOBAL) < 0) fail_file("{}: flush failed ({})", path_, last_hdf5_error());
  half_type_.reset();
  file_.reset();
}

void DumpWriter::write_layer(const LayerData& data) {
  if (!file_) fail("{}: write_layer after close", path_);
  const int layer = data.layer;
  if (layer < 0 || layer >= info_.num_layers)
    fail("{}: layer {} out of range (the dump has layers 0..{})", path_, layer, info_.num_layers - 1);
  if (written_[static_cast<std::size_t>(layer)]) fail("{}: layer {} written twice", path_, layer);
  if (info_.has_queries && data.queries.empty())
    fail("{}: layer {} has no queries but the dump was declared with queries", path_, layer);
  if (!info_.has_queries && !data.queries.empty())
    fail("{}: layer {} has queries but the dump was declared without them", path_, layer);

  const std::string group_path = fmt::format("/layers/{}", layer);
  GroupHandle group(H5Gcreate2(file_.get(), group_path.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  if (!group) fail_file("{}: cannot create group {} ({})", path_, group_path, last_hdf5_error());
  if (!info_.layer_attention.empty()) {
    const DumpInfo::LayerAttention& la = info_.layer_attention[static_cast<std::size_t>(layer)];
    if (la.sliding_window > 0) write_int_attribute(group.get(), "sliding_window", la.sliding_window, path_);
    if (la.rope_attention_scaling)
      write_float_attribute(group.get(), "rope_attention_scaling", *la.rope_attention_scaling, path_);
    if (!la.rope_inv_freq.empty())
      write_double_dataset(file_.get(), group_path + "/rope_inv_freq", la.rope_inv_freq, path_);
  }
  write_tensor(group.get(), "keys", data.keys, info_.num_kv_heads, layer);
  write_tensor(group.get(), "values", data.values, info_.num_kv_heads, layer);
  if (info_.has_queries) write_tensor(group.get(), "queries", data.queries, info_.num_heads, layer);
  written_[static_cast<std::size_t>(layer)] = true;
}

void DumpWriter::write_tensor(hid_t group, const char* name, const std::vector<Matrix>& heads, int expected_heads,
                              int layer) {
  const std::string ds_path = fmt::format("/layers/{}/{}", layer, name);
  const int T = info_.seq_len, d = info_.head_dim;
  if (static_cast<int>(heads.size()) != expected_heads)
    fail("{}: {}: expected {} heads, got {}", path_, ds_path, expected_heads, heads.size());
  for (std::size_t h = 0; h < heads.size(); ++h)
    if (heads[h].rows() != T || heads[h].cols() != d)
      fail("{}: {}: head {} expected [{} × {}], got [{} × {}]", path_, ds_path, h, T, d, heads[h].rows(),
           heads[h].cols());

  // Contiguous layout, no filters. Readers take per-head hyperslabs
  // [h, 0:t, :], and with d innermost each such slab is one contiguous byte
  // range in a contiguous dataset: a single pread, no chunk index or chunk
  // cache, and the writer streams memory to disk unchanged. Chunking would
  // only pay off with compression, which does not shrink noisy FP16 caches
  // enough to be worth its CPU cost.
  const hsize_t dims[3] = {static_cast<hsize_t>(expected_heads), static_cast<hsize_t>(T), static_cast<hsize_t>(d)};
  DataspaceHandle file_space(H5Screate_simple(3, dims, nullptr));
  const hid_t file_type = options_.float16 ? half_type_.get() : H5T_IEEE_F32LE;
  DatasetHandle ds(H5Dcreate2(group, name, file_type, file_space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  if (!ds) fail_file("{}: cannot create dataset {} ({})", path_, ds_path, last_hdf5_error());
  const hsize_t mem_dims[2] = {static_cast<hsize_t>(T), static_cast<hsize_t>(d)};
  DataspaceHandle mem_space(H5Screate_simple(2, mem_dims, nullptr));
  const std::size_t n = static_cast<std::size_t>(T) * static_cast<std::size_t>(d);
  if (options_.float16) half_buffer_.resize(n);

  for (int h = 0; h < expected_heads; ++h) {
    const Matrix& m = heads[static_cast<std::size_t>(h)];
    const hsize_t start[3] = {static_cast<hsize_t>(h), 0, 0};
    const hsize_t count[3] = {1, static_cast<hsize_t>(T), static_cast<hsize_t>(d)};
    H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start, nullptr, count, nullptr);
    herr_t status;
    if (options_.float16) {
      const float* src = m.data();
      std::uint16_t* dst = half_buffer_.data();
      for (std::size_t i = 0; i < n; ++i) dst[i] = float_to_half_bits(src[i]);
      // Overflow check only on the (rare) exponent-all-ones results.
      for (std::size_t i = 0; i < n; ++i)
        if ((dst[i] & 0x7C00u) == 0x7C00u && std::isfinite(src[i]))
          fail("{}: {}: value {} at [head {}, token {}, channel {}] overflows float16 (max 65504); write float32",
               path_, ds_path, src[i], h, i / static_cast<std::size_t>(d), i % static_cast<std::size_t>(d));
      // The memory type is the file type: HDF5 copies the bits unconverted.
      status = H5Dwrite(ds.get(), half_type_.get(), mem_space.get(), file_space.get(), H5P_DEFAULT, dst);
    } else {
      status = H5Dwrite(ds.get(), H5T_NATIVE_FLOAT, mem_space.get(), file_space.get(), H5P_DEFAULT, m.data());
    }
    if (status < 0) fail_file("{}: writing {} head {} failed ({})", path_, ds_path, h, last_hdf5_error());
  }
}

void DumpWriter::write_tokens(const std::vector<std::int64_t>& tokens) {
  if (!file_) fail("{}: write_tokens after close", path_);
  if (static_cast<int>(tokens.size()) != info_.seq_len)
    fail("{}: /tokens: expected {} token ids (seq_len), got {}", path_, info_.seq_len, tokens.size());
  const hsize_t dims[1] = {tokens.size()};
  DataspaceHandle space(H5Screate_simple(1, dims, nullptr));
  DatasetHandle ds(H5Dcreate2(file_.get(), "/tokens", H5T_STD_I64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT,
                              H5P_DEFAULT));
  if (!ds || H5Dwrite(ds.get(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, tokens.data()) < 0)
    fail_file("{}: cannot write /tokens ({})", path_, last_hdf5_error());
}

}  // namespace kvlab
