#pragma once
// Reader for kvdump v1 files (docs/dump-format.md).
//
// The constructor validates the whole file structure (attributes, dataset
// shapes and element types) without reading tensor data; read_layer() then
// reads one layer with HDF5 hyperslabs, never the whole file, converts to
// float32 and checks that every value is finite. Every problem is reported as a
// one-line kvlab::Error naming the file, the attribute or dataset path, and
// what was expected vs. found.
//
// Threading: HDF5 (as built by Debian) is not thread-safe. A DumpReader, and
// all DumpReaders/DumpWriters of a process together, must be used from one
// thread at a time; parallel work should read a layer first and then fan out.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kvlab/io/dump_info.hpp"

namespace kvlab {

class DumpReader {
 public:
  explicit DumpReader(const std::string& path);
  ~DumpReader();
  DumpReader(DumpReader&&) noexcept;
  DumpReader& operator=(DumpReader&&) noexcept;

  const DumpInfo& info() const;
  // Keys and values (and queries when with_queries and the dump has them) of
  // `layer`, for token positions [0, min(max_tokens, seq_len)) (all when
  // max_tokens < 0). Throws kvlab::Error on a bad layer index, a failed read
  // (truncated/corrupt file) or a non-finite value. float16 data is read
  // raw and decoded to float32 by `decode_threads` OpenMP threads (HDF5
  // itself is called from the calling thread only).
  LayerData read_layer(int layer, bool with_queries = true, int max_tokens = -1, int decode_threads = 1) const;
  // The /tokens dataset; throws kvlab::Error when the dump has none.
  std::vector<std::int64_t> read_tokens() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kvlab
