#pragma once
// Writer for kvdump v1 files (docs/dump-format.md); the inverse of DumpReader.
//
// Usage: construct with the dump's shape (DumpInfo: num_layers, num_heads,
// num_kv_heads, head_dim, seq_len, prompt_len, optional model/text/rope, the
// optional attention description — attn_scale, attn_logit_softcap,
// rotary_dim, layer_attention (empty or one entry per layer) — and
// has_queries), then write_layer() each layer once (any order) and
// optionally write_tokens(); close() (or the destructor) finishes the file.
// Like DumpReader, a DumpWriter must be used from one thread (HDF5 is not
// thread-safe here).
#include <cstdint>
#include <string>
#include <vector>

#include "kvlab/io/dump_info.hpp"
#include "kvlab/io/hdf5_handle.hpp"

namespace kvlab {

struct DumpWriteOptions {
  bool float16 = true;  // store tensors as IEEE half (as a real FP16 cache); false: float32
};

class DumpWriter {
 public:
  // Creates (truncates) `path` and writes the root attributes. info.path,
  // info.dtype, info.has_tokens are ignored; info.has_queries says whether
  // every layer will carry queries.
  DumpWriter(const std::string& path, const DumpInfo& info, DumpWriteOptions options = {});
  ~DumpWriter();
  DumpWriter(const DumpWriter&) = delete;
  DumpWriter& operator=(const DumpWriter&) = delete;

  // Writes /layers/L/{keys,values[,queries]} for L = data.layer. Shapes must
  // match the DumpInfo; in float16 mode a finite value beyond the FP16 range
  // is an error (it would be stored as inf).
  void write_layer(const LayerData& data);
  void write_tokens(const std::vector<std::int64_t>& tokens);
  // Flushes and closes; throws kvlab::Error if a layer was never written.
  // The destructor closes without that check.
  void close();

 private:
  void write_attention_description();
  void write_tensor(hid_t group, const char* name, const std::vector<Matrix>& heads, int expected_heads,
                    int layer);

  std::string path_;
  DumpInfo info_;
  DumpWriteOptions options_;
  io::FileHandle file_;
  io::DatatypeHandle half_type_;
  std::vector<bool> written_;
  std::vector<std::uint16_t> half_buffer_;
};

}  // namespace kvlab
