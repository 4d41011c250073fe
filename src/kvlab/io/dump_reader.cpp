#include "kvlab/io/dump_reader.hpp"

#include <fmt/format.h>
#include <hdf5.h>

#include <climits>
#include <cmath>

#include "kvlab/core/error.hpp"
#include "kvlab/io/attention_attrs.hpp"
#include "kvlab/io/hdf5_checked.hpp"
#include "kvlab/io/hdf5_errors.hpp"
#include "kvlab/io/hdf5_handle.hpp"

namespace kvlab {

using namespace kvlab::io;

namespace {

const char* float_name(std::size_t bytes) {
  switch (bytes) {
    case 2: return "float16";
    case 4: return "float32";
    case 8: return "float64";
  }
  return "?";
}

}  // namespace

struct DumpReader::Impl {
  DumpInfo info;
  CheckedFile file;

  [[noreturn]] void bad(const std::string& what) const { file.bad(what); }

  DatasetHandle open_dataset(const std::string& path) const { return file.open_dataset(path); }

  std::size_t check_tensor(const std::string& path, const std::vector<hsize_t>& expected,
                           const char* dims_meaning) const {
    return file.check_float_tensor(path, expected, dims_meaning);
  }

  int required_int(const char* name) const {
    const auto value = read_int_attribute(file.get(), name, info.path, "/");
    if (!value) bad(fmt::format("missing root attribute '{}' (required integer)", name));
    if (*value <= 0 || *value > INT_MAX)
      bad(fmt::format("root attribute '{}': expected a positive integer, found {}", name, *value));
    return static_cast<int>(*value);
  }

  void validate() {
    const hid_t f = file.get();
    const auto format = read_string_attribute(f, "format", info.path, "/");
    if (!format) bad("missing root attribute 'format' (expected \"kvdump\")");
    if (*format != "kvdump") bad(fmt::format("root attribute 'format': expected \"kvdump\", found \"{}\"", *format));
    const auto version = read_int_attribute(f, "version", info.path, "/");
    if (!version) bad("missing root attribute 'version' (expected 1)");
    if (*version != 1)
      bad(fmt::format("root attribute 'version': expected 1, found {} (this kvlab reads kvdump version 1)",
                      *version));

    info.num_layers = required_int("num_layers");
    info.num_heads = required_int("num_heads");
    info.num_kv_heads = required_int("num_kv_heads");
    info.head_dim = required_int("head_dim");
    info.prompt_len = required_int("prompt_len");
    if (info.num_heads % info.num_kv_heads != 0)
      bad(fmt::format("root attributes: num_heads ({}) must be a multiple of num_kv_heads ({})", info.num_heads,
                      info.num_kv_heads));

    info.model = read_string_attribute(f, "model", info.path, "/").value_or("");
    info.text = read_string_attribute(f, "text", info.path, "/").value_or("");
    const auto theta = read_float_attribute(f, "rope_theta", info.path, "/");
    const auto style = read_string_attribute(f, "rope_style", info.path, "/");
    RopeStyle rope_style = RopeStyle::None;
    if (style) {
      if (*style != "neox" && *style != "gptj" && *style != "none")
        bad(fmt::format("root attribute 'rope_style': expected \"neox\" or \"gptj\", found \"{}\"", *style));
      rope_style = parse_rope_style(*style);
    }
    if (theta) {
      if (!(std::isfinite(*theta) && *theta > 0))
        bad(fmt::format("root attribute 'rope_theta': expected a positive number, found {}", *theta));
      info.rope = RopeInfo{*theta, rope_style};
    }

    if (!path_exists(f, "/layers")) bad("missing group /layers");

    // seq_len comes from layer 0 keys; every other tensor must agree with it.
    const std::string keys0 = layer_path(0, "keys");
    {
      DatasetHandle ds = open_dataset(keys0);
      const std::vector<hsize_t> shape = dataset_shape(ds.get());
      if (shape.size() != 3)
        bad(fmt::format("{}: expected rank 3 [num_kv_heads, seq_len, head_dim], found rank {} {}", keys0,
                        shape.size(), shape_to_string(shape)));
      if (shape[1] == 0 || shape[1] > static_cast<hsize_t>(INT_MAX))
        bad(fmt::format("{}: expected 0 < seq_len (dimension 1), found shape {}", keys0, shape_to_string(shape)));
      info.seq_len = static_cast<int>(shape[1]);
    }
    if (info.prompt_len > info.seq_len)
      bad(fmt::format("root attribute 'prompt_len': expected <= seq_len {} (from {}), found {}", info.seq_len,
                      keys0, info.prompt_len));

    const auto kv = static_cast<hsize_t>(info.num_kv_heads);
    const auto T = static_cast<hsize_t>(info.seq_len);
    const auto d = static_cast<hsize_t>(info.head_dim);
    const std::vector<hsize_t> kv_shape{kv, T, d};
    const std::vector<hsize_t> q_shape{static_cast<hsize_t>(info.num_heads), T, d};
    const char* kv_meaning = "[num_kv_heads, seq_len, head_dim]";
    const char* q_meaning = "[num_heads, seq_len, head_dim]";

    info.has_queries = path_exists(f, layer_path(0, "queries"));
    for (int layer = 0; layer < info.num_layers; ++layer) {
      const std::size_t key_bytes = check_tensor(layer_path(layer, "keys"), kv_shape, kv_meaning);
      if (layer == 0) info.dtype = float_name(key_bytes);
      check_tensor(layer_path(layer, "values"), kv_shape, kv_meaning);
      const std::string q = layer_path(layer, "queries");
      const bool has_q = path_exists(f, q);
      if (has_q != info.has_queries) {
        if (info.has_queries)
          bad(fmt::format("missing dataset {} (/layers/0/queries exists; queries must be in every layer or none)",
                          q));
        bad(fmt::format("{}: present but /layers/0/queries is absent (queries must be in every layer or none)", q));
      }
      if (has_q) check_tensor(q, q_shape, q_meaning);
    }

    info.has_tokens = path_exists(f, "/tokens");
    if (info.has_tokens) {
      DatasetHandle ds = open_dataset("/tokens");
      const std::vector<hsize_t> shape = dataset_shape(ds.get());
      if (shape != std::vector<hsize_t>{T})
        bad(fmt::format("/tokens: expected shape [{}] ([seq_len]), found {}", T, shape_to_string(shape)));
      DatatypeHandle type(H5Dget_type(ds.get()));
      if (H5Tget_class(type.get()) != H5T_INTEGER)
        bad(fmt::format("/tokens: expected integer elements, found {}", describe_type(type.get())));
    }
    read_attention_attributes(file, info);
  }

  // Reads heads [0, heads) × tokens [0, tokens) × all channels of a rank-3
  // dataset, one head per hyperslab, straight into float32 matrices.
  std::vector<Matrix> read_tensor(const std::string& path, int heads, int tokens, int decode_threads) const {
    FloatReader reader(file, path);
    reader.set_decode_threads(decode_threads);
    const int d = info.head_dim;
    std::vector<Matrix> out(static_cast<std::size_t>(heads));
    for (int h = 0; h < heads; ++h) {
      Matrix& m = out[static_cast<std::size_t>(h)];
      m.resize(tokens, d);
      if (tokens == 0) continue;
      reader.read_block(m.data(), {static_cast<hsize_t>(h), 0, 0},
                        {1, static_cast<hsize_t>(tokens), static_cast<hsize_t>(d)}, fmt::format("head {}", h),
                        "value", [&](std::size_t i) {
                          return fmt::format("[head {}, token {}, channel {}]", h, i / static_cast<std::size_t>(d),
                                             i % static_cast<std::size_t>(d));
                        });
    }
    return out;
  }
};

DumpReader::DumpReader(const std::string& path) : impl_(std::make_unique<Impl>()) {
  impl_->info.path = path;
  impl_->file = CheckedFile(path, "kvdump");
  impl_->validate();
}

DumpReader::~DumpReader() = default;
DumpReader::DumpReader(DumpReader&&) noexcept = default;
DumpReader& DumpReader::operator=(DumpReader&&) noexcept = default;

const DumpInfo& DumpReader::info() const { return impl_->info; }

LayerData DumpReader::read_layer(int layer, bool with_queries, int max_tokens, int decode_threads) const {
  const DumpInfo& info = impl_->info;
  if (layer < 0 || layer >= info.num_layers)
    fail("{}: layer {} out of range (the dump has layers 0..{})", info.path, layer, info.num_layers - 1);
  const int tokens = max_tokens < 0 ? info.seq_len : std::min(max_tokens, info.seq_len);
  LayerData data;
  data.layer = layer;
  data.keys = impl_->read_tensor(layer_path(layer, "keys"), info.num_kv_heads, tokens, decode_threads);
  data.values = impl_->read_tensor(layer_path(layer, "values"), info.num_kv_heads, tokens, decode_threads);
  if (with_queries && info.has_queries)
    data.queries = impl_->read_tensor(layer_path(layer, "queries"), info.num_heads, tokens, decode_threads);
  return data;
}

std::vector<std::int64_t> DumpReader::read_tokens() const {
  const DumpInfo& info = impl_->info;
  if (!info.has_tokens) fail_file("{}: missing dataset /tokens (the dump records no token ids)", info.path);
  DatasetHandle ds = impl_->open_dataset("/tokens");
  std::vector<std::int64_t> tokens(static_cast<std::size_t>(info.seq_len));
  if (H5Dread(ds.get(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, tokens.data()) < 0)
    fail_file("{}: /tokens: read failed, file truncated or corrupt ({})", info.path, last_hdf5_error());
  return tokens;
}

}  // namespace kvlab
