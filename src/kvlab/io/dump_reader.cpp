#include "kvlab/io/dump_reader.hpp"

#include <fmt/format.h>
#include <hdf5.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>

#include "kvlab/core/error.hpp"
#include "kvlab/io/attention_attrs.hpp"
#include "kvlab/io/hdf5_checked.hpp"
#include "kvlab/io/hdf5_errors.hpp"
#include "kvlab/io/hdf5_handle.hpp"
#include "kvlab/io/hdf5_storage.hpp"
#include "kvlab/io/memory_budget.hpp"
#include "kvlab/io/probe_process.hpp"

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

  // Largest chunk of any tensor as HDF5 decodes it: a read holds one.
  std::uint64_t largest_chunk = 0;

  std::size_t check_tensor(const std::string& path, const std::vector<hsize_t>& expected, const char* dims_meaning) {
    const CheckedFile::TensorStorage storage = file.check_tensor_storage(path, expected, dims_meaning);
    largest_chunk = std::max(largest_chunk, storage.chunk_bytes);
    return storage.element_size;
  }

  // Memory read_layer takes for `tokens` positions: float32 matrices, the
  // float16 staging buffer of one head and one decoded chunk.
  std::uint64_t layer_read_bytes(int tokens, bool with_queries) const {
    const std::uint64_t heads = static_cast<std::uint64_t>(info.num_kv_heads) * 2 +
                                (with_queries && info.has_queries ? static_cast<std::uint64_t>(info.num_heads) : 0);
    const std::uint64_t per_head = static_cast<std::uint64_t>(tokens) * static_cast<std::uint64_t>(info.head_dim);
    return heads * per_head * sizeof(float) + per_head * 2 + largest_chunk;
  }

  void require_layer_memory(int tokens, bool with_queries) const {
    require_memory(info.path,
                   fmt::format("reading one layer ({} kv heads{} x {} tokens x {} channels as float32)",
                               info.num_kv_heads,
                               with_queries && info.has_queries ? fmt::format(" + {} query heads", info.num_heads) : "",
                               tokens, info.head_dim),
                   layer_read_bytes(tokens, with_queries));
  }

  // /tokens as int64, each id checked: a token id is in [0, 2^31).
  std::vector<std::int64_t> load_tokens() const {
    DatasetHandle ds = open_dataset("/tokens");
    note_reading("/tokens (data)");
    std::vector<std::int64_t> tokens(static_cast<std::size_t>(info.seq_len));
    if (H5Dread(ds.get(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, tokens.data()) < 0)
      bad(fmt::format("/tokens: read failed, file truncated or corrupt ({})", last_hdf5_error()));
    for (std::size_t i = 0; i < tokens.size(); ++i)
      if (tokens[i] < 0 || tokens[i] > INT32_MAX)
        bad(fmt::format("/tokens: token id {} at position {} is {}; token ids are in [0, {}]", tokens[i], i,
                        tokens[i] < 0 ? "negative" : "too large", INT32_MAX));
    return tokens;
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
    if (*format != "kvdump") bad(fmt::format("root attribute 'format': expected \"kvdump\", found {}", quoted(*format)));
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
        bad(fmt::format("root attribute 'rope_style': expected \"neox\" or \"gptj\", found {}", quoted(*style)));
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
      const std::size_t size = H5Tget_size(type.get());
      if (H5Tget_class(type.get()) != H5T_INTEGER || size == 0 || size > 8)
        bad(fmt::format("/tokens: expected integer elements, found {}", describe_type(type.get())));
      check_storage_size(ds.get(), shape, size, file.size(), fmt::format("{}: /tokens", info.path));
      load_tokens();
    }
    read_attention_attributes(file, info);
    require_layer_memory(info.seq_len, true);
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
  // Everything HDF5 parses to validate the file, plus the first token of
  // every head (the chunk lookups and filters of a read), first in a child.
  probe_in_child(path, [&path] {
    Impl probe;
    probe.info.path = path;
    probe.file = CheckedFile(path, "kvdump");
    probe.validate();
    for (int layer = 0; layer < probe.info.num_layers; ++layer) {
      probe.read_tensor(layer_path(layer, "keys"), probe.info.num_kv_heads, 1, 1);
      probe.read_tensor(layer_path(layer, "values"), probe.info.num_kv_heads, 1, 1);
      if (probe.info.has_queries) probe.read_tensor(layer_path(layer, "queries"), probe.info.num_heads, 1, 1);
    }
  });
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
  impl_->require_layer_memory(tokens, with_queries);
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
  return impl_->load_tokens();
}

}  // namespace kvlab
