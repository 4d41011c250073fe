// Writes the seed dumps of the fuzz corpus (tests/fuzz/corpus/dump/) with
// kvlab's own synth and writer: a few tiny variants (float16/float32, GQA,
// queries or not, tokens, RoPE styles) and one with chunked shuffle+deflate
// storage, so the fuzzer starts from every code path.
// Usage: make_fuzz_seeds OUT_DIR
#include <hdf5.h>

#include <cstdio>
#include <string>
#include <vector>

#include "kvlab/core/error.hpp"
#include "kvlab/io/hdf5_errors.hpp"
#include "kvlab/io/hdf5_handle.hpp"
#include "kvlab/io/synth.hpp"

using namespace kvlab;

namespace {

SynthOptions tiny(int heads, int kv_heads, int head_dim, int tokens, std::uint64_t seed) {
  SynthOptions o;
  o.num_layers = 2;
  o.num_heads = heads;
  o.num_kv_heads = kv_heads;
  o.head_dim = head_dim;
  o.seq_len = tokens;
  o.prompt_len = tokens / 2;
  o.seed = seed;
  return o;
}

// Re-stores layer 0's keys and values chunked [1, 4, d] with shuffle +
// deflate (only those: each chunk index costs ~2 KB of B-tree nodes).
void restore_chunked(const std::string& path) {
  io::FileHandle f(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT));
  KVLAB_ASSERT(f.valid());
  for (int layer = 0; layer < 1; ++layer) {
    for (const char* name : {"keys", "values"}) {
      const std::string ds_path = "/layers/" + std::to_string(layer) + "/" + name;
      std::vector<float> data;
      hsize_t dims[3] = {0, 0, 0};
      {
        io::DatasetHandle ds(H5Dopen2(f.get(), ds_path.c_str(), H5P_DEFAULT));
        if (!ds) continue;
        io::DataspaceHandle space(H5Dget_space(ds.get()));
        H5Sget_simple_extent_dims(space.get(), dims, nullptr);
        data.resize(dims[0] * dims[1] * dims[2]);
        KVLAB_ASSERT(H5Dread(ds.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data()) >= 0);
      }
      KVLAB_ASSERT(H5Ldelete(f.get(), ds_path.c_str(), H5P_DEFAULT) >= 0);
      io::PropListHandle dcpl(H5Pcreate(H5P_DATASET_CREATE));
      const hsize_t chunk[3] = {1, 4, dims[2]};
      H5Pset_chunk(dcpl.get(), 3, chunk);
      H5Pset_shuffle(dcpl.get());
      H5Pset_deflate(dcpl.get(), 4);
      io::DataspaceHandle space(H5Screate_simple(3, dims, nullptr));
      io::DatatypeHandle half = io::make_float16_type();
      io::DatasetHandle ds(
          H5Dcreate2(f.get(), ds_path.c_str(), half.get(), space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT));
      KVLAB_ASSERT(H5Dwrite(ds.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data()) >= 0);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_fuzz_seeds OUT_DIR\n");
    return 2;
  }
  io::silence_hdf5_errors();
  const std::string out = argv[1];
  SynthOptions a = tiny(2, 1, 4, 8, 1);  // float16, queries, tokens, neox
  write_synth_dump(out + "/f16-queries-neox.h5", a, 1);
  SynthOptions b = tiny(4, 2, 8, 6, 2);  // GQA, float32, gptj
  b.float16 = false;
  b.rope_style = RopeStyle::Gptj;
  write_synth_dump(out + "/f32-gqa-gptj.h5", b, 1);
  SynthOptions c = tiny(2, 2, 4, 4, 3);  // no queries, no RoPE attributes
  c.with_queries = false;
  c.rope = false;
  write_synth_dump(out + "/f16-noq-norope.h5", c, 1);
  write_synth_dump(out + "/chunked-deflate.h5", a, 1);
  restore_chunked(out + "/chunked-deflate.h5");
  return 0;
}
