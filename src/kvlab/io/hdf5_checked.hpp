#pragma once
// Checked reading of float tensors from an HDF5 file, shared by DumpReader
// (kvdump files) and the model loader (kvlab-model files).
//
// Every error is a kvlab::Error of one line naming the file and, where there
// is one, the dataset: "<file>: <dataset>: expected X, found Y".
#include <hdf5.h>

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "kvlab/io/hdf5_handle.hpp"

namespace kvlab::io {

// "/layers/<layer>/<name>"
std::string layer_path(int layer, const char* name);

// True when every component of `path` ("/a/b/c") exists as a link.
bool path_exists(hid_t file, const std::string& path);

// An HDF5 file opened read-only, bound to its file name for error messages.
class CheckedFile {
 public:
  CheckedFile() = default;
  // Opens `path` read-only, telling a missing, unreadable, empty, non-HDF5
  // or truncated file apart; `kind` names the expected format in the
  // "is a directory" message ("kvdump", "kvlab-model").
  CheckedFile(const std::string& path, const char* kind);

  hid_t get() const { return file_.get(); }
  const std::string& path() const { return path_; }

  // Throws "<file>: <what>".
  [[noreturn]] void bad(const std::string& what) const;

  bool exists(const std::string& dataset) const { return path_exists(file_.get(), dataset); }

  // Opens a dataset: "missing dataset X", "X: expected a dataset, ...".
  DatasetHandle open_dataset(const std::string& dataset) const;

  // Checks rank, shape and float element type (float16/32/64) of `dataset`;
  // `dims_meaning` names the dimensions in messages ("[hidden_size]").
  // Returns the element size in bytes.
  std::size_t check_float_tensor(const std::string& dataset, const std::vector<hsize_t>& expected_shape,
                                 const std::string& dims_meaning) const;

 private:
  std::string path_;
  FileHandle file_;
};

// Reads float data of one dataset as float32, whole or by hyperslabs.
// IEEE half little endian (what h5py and DumpWriter store) is read as raw
// bits and decoded by kvlab, several times faster than HDF5's soft
// float16→float32 conversion; any other float layout goes through HDF5.
class FloatReader {
 public:
  FloatReader(const CheckedFile& file, const std::string& dataset);

  // Names the first non-finite element for the error message, from its
  // index in the block just read (e.g. "[3, 5]").
  using Locate = std::function<std::string(std::size_t index)>;

  // Reads the whole dataset (`count` elements) into `dst`.
  void read_all(float* dst, std::size_t count, const char* noun, const Locate& locate);
  // Reads the hyperslab `start`/`count` (one entry per dataset dimension;
  // the selection is read as a [count[rank-2], count[rank-1]] block) into
  // `dst`. `part` names the block in messages ("head 3").
  void read_block(float* dst, const std::vector<hsize_t>& start, const std::vector<hsize_t>& count,
                  const std::string& part, const char* noun, const Locate& locate);
  // OpenMP threads that decode raw float16 (default 1; HDF5 is only ever
  // called from the calling thread).
  void set_decode_threads(int threads) { decode_threads_ = threads; }

 private:
  void read_into(float* dst, std::size_t n, hid_t mem_space, hid_t file_space, const std::string& part,
                 const char* noun, const Locate& locate);

  const CheckedFile& file_;
  std::string dataset_;
  DatasetHandle ds_;
  DatatypeHandle type_;
  bool raw_half_ = false;
  int decode_threads_ = 1;
  std::vector<std::uint16_t> half_;
};

}  // namespace kvlab::io
