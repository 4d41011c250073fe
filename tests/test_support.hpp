#pragma once
// Helpers shared by the unit tests: random data, block contexts, feeding a
// cache state, temporary directories, synthetic dumps and raw HDF5 edits.
// Header-only; everything is in kvlab::test.
#include <hdf5.h>
#include <stdlib.h>  // mkdtemp
#include <unistd.h>  // getpid

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "kvlab/compressors/compressor.hpp"
#include "kvlab/core/error.hpp"
#include "kvlab/core/rng.hpp"
#include "kvlab/core/types.hpp"
#include "kvlab/io/dump_writer.hpp"
#include "kvlab/io/hdf5_handle.hpp"
#include "kvlab/io/synth.hpp"

namespace kvlab::test {

namespace fs = std::filesystem;

// [rows × cols] of scale·N(0, 1), drawn row by row from `rng`.
inline Matrix random_matrix(int rows, int cols, Rng& rng, double scale = 1.0) {
  Matrix m(rows, cols);
  for (int i = 0; i < rows; ++i)
    for (int j = 0; j < cols; ++j) m(i, j) = static_cast<float>(scale * rng.normal());
  return m;
}

// The same from a fresh Rng(seed).
inline Matrix random_matrix(int rows, int cols, std::uint64_t seed, double scale = 1.0) {
  Rng rng(seed);
  return random_matrix(rows, cols, rng, scale);
}

// A block context with the given head size, capacity, prompt and seed; every
// other field keeps BlockContext's default.
inline BlockContext block_context(int head_dim, int max_tokens, int prompt_len, std::uint64_t seed = 0) {
  BlockContext c;
  c.head_dim = head_dim;
  c.max_tokens = max_tokens;
  c.prompt_len = prompt_len;
  c.seed = seed;
  return c;
}

// Prefills rows [0, prompt) of k/v, then appends rows [prompt, end) one by
// one, without queries.
inline void feed(CacheState& s, const Matrix& k, const Matrix& v, int prompt, int end) {
  s.prefill(k.topRows(prompt), v.topRows(prompt), {});
  for (int t = prompt; t < end; ++t) s.append(k.row(t), v.row(t), {});
}

// A fresh temporary directory (mkdtemp), removed with its contents.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& prefix) {
    std::string pattern = (fs::temp_directory_path() / (prefix + "XXXXXX")).string();
    KVLAB_ASSERT(mkdtemp(pattern.data()) != nullptr);
    path = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const std::string& name) const { return (path / name).string(); }
};

// <tmp>/<name>_<pid>: a per-process path for fixtures shared by a test file.
inline fs::path process_temp_path(const std::string& name) {
  return fs::temp_directory_path() / fmt::format("{}_{}", name, ::getpid());
}

// The shape of a dump, without any optional attribute.
inline DumpInfo dump_shape(int layers, int heads, int kv_heads, int head_dim, int seq_len, int prompt_len,
                           bool queries = true) {
  DumpInfo info;
  info.num_layers = layers;
  info.num_heads = heads;
  info.num_kv_heads = kv_heads;
  info.head_dim = head_dim;
  info.seq_len = seq_len;
  info.prompt_len = prompt_len;
  info.has_queries = queries;
  return info;
}

// Writes `info` with Gaussian K, V (and Q when info.has_queries) per layer:
// head h of layer l from seed seed + 100·l + h (keys), + 40 (values), + 70
// (query heads); stored as float16 or float32.
inline void write_random_dump(const std::string& path, const DumpInfo& info, bool float16, std::uint64_t seed = 0,
                              const std::vector<std::int64_t>& tokens = {}) {
  DumpWriter writer(path, info, DumpWriteOptions{float16});
  for (int l = 0; l < info.num_layers; ++l) {
    LayerData d;
    d.layer = l;
    const std::uint64_t base = seed + 100 * static_cast<std::uint64_t>(l);
    for (int h = 0; h < info.num_kv_heads; ++h) {
      d.keys.push_back(random_matrix(info.seq_len, info.head_dim, base + static_cast<std::uint64_t>(h)));
      d.values.push_back(random_matrix(info.seq_len, info.head_dim, base + 40 + static_cast<std::uint64_t>(h)));
    }
    if (info.has_queries)
      for (int h = 0; h < info.num_heads; ++h)
        d.queries.push_back(random_matrix(info.seq_len, info.head_dim, base + 70 + static_cast<std::uint64_t>(h)));
    writer.write_layer(d);
  }
  if (!tokens.empty()) writer.write_tokens(tokens);
  writer.close();
}

// Writes a synthetic dump of the "tiny" preset (seed and the rest default).
inline std::string write_tiny_dump(const fs::path& path, bool with_queries = true) {
  SynthOptions o;
  o.preset = "tiny";
  o.with_queries = with_queries;
  write_synth_dump(path.string(), o, 1);
  return path.string();
}

// Raw HDF5 access to corrupt a valid file in specific ways.
struct RawFile {
  io::FileHandle file;
  explicit RawFile(const std::string& path) : file(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT)) {
    KVLAB_ASSERT(file.valid());
  }
  hid_t id() const { return file.get(); }
  void remove(const std::string& path) { KVLAB_ASSERT(H5Ldelete(id(), path.c_str(), H5P_DEFAULT) >= 0); }
  void remove_attr(const char* name) { KVLAB_ASSERT(H5Adelete(id(), name) >= 0); }
  // Creates `path` with the given shape and file type, filled from `values` (memory type float or double).
  void create(const std::string& path, std::vector<hsize_t> shape, hid_t file_type, const void* data = nullptr,
              hid_t mem_type = H5T_NATIVE_FLOAT) {
    io::DataspaceHandle space(H5Screate_simple(static_cast<int>(shape.size()), shape.data(), nullptr));
    io::DatasetHandle ds(
        H5Dcreate2(id(), path.c_str(), file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    KVLAB_ASSERT(ds.valid());
    if (data) KVLAB_ASSERT(H5Dwrite(ds.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
  }
  void replace(const std::string& path, std::vector<hsize_t> shape, hid_t file_type, const void* data = nullptr,
               hid_t mem_type = H5T_NATIVE_FLOAT) {
    remove(path);
    create(path, std::move(shape), file_type, data, mem_type);
  }
};

}  // namespace kvlab::test
