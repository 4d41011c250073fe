// Corrupt and hostile kvdump files: each must fail with one kvlab::Error
// naming the file and the attribute/dataset, without a crash (the ASan build
// runs these too) and without allocating what the header claims.
#include <hdf5.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "kvlab/core/error.hpp"
#include "kvlab/io/dump_reader.hpp"
#include "kvlab/io/dump_writer.hpp"
#include "kvlab/io/hdf5_errors.hpp"
#include "kvlab/io/hdf5_handle.hpp"
#include "kvlab/io/memory_budget.hpp"
#include "kvlab/io/probe_process.hpp"
#include "test_support.hpp"

using namespace kvlab;
using Catch::Matchers::Contains;
using test::RawFile;
using test::TempDir;

namespace {

DumpInfo tiny_info() {
  DumpInfo info = test::dump_shape(2, 2, 1, 4, 8, 4);
  info.model = "hostile-input test";
  return info;
}

void write_tiny(const std::string& path, const std::vector<std::int64_t>& tokens = {}) {
  test::write_random_dump(path, tiny_info(), true, 10, tokens);
}

std::vector<unsigned char> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const std::string& path, const std::vector<unsigned char>& bytes) {
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()),
                                              static_cast<std::streamsize>(bytes.size()));
}

// Offset of the 16-byte global heap ID (length, collection address, object
// index) that the attribute holding `value` stores, found by locating the
// heap object with those bytes and then the ID pointing at it.
std::size_t find_heap_id(const std::vector<unsigned char>& f, const std::string& value) {
  const std::string gcol = "GCOL";
  for (auto it = std::search(f.begin(), f.end(), gcol.begin(), gcol.end()); it != f.end();
       it = std::search(it + 1, f.end(), gcol.begin(), gcol.end())) {
    const auto collection = static_cast<std::uint64_t>(it - f.begin());
    std::uint64_t size = 0;
    std::memcpy(&size, &f[collection + 8], 8);
    for (std::uint64_t p = collection + 16; p + 16 <= collection + size;) {
      std::uint16_t index = 0;
      std::uint64_t length = 0;
      std::memcpy(&index, &f[p], 2);
      std::memcpy(&length, &f[p + 8], 8);
      if (index == 0) break;
      if (length == value.size() && std::memcmp(&f[p + 16], value.data(), value.size()) == 0) {
        unsigned char id[16];
        const auto len32 = static_cast<std::uint32_t>(length);
        const std::uint32_t index32 = index;
        std::memcpy(id, &len32, 4);
        std::memcpy(id + 4, &collection, 8);
        std::memcpy(id + 12, &index32, 4);
        const auto at = std::search(f.begin(), f.end(), std::begin(id), std::end(id));
        KVLAB_ASSERT(at != f.end());
        return static_cast<std::size_t>(at - f.begin());
      }
      p += 16 + (length + 7) / 8 * 8;
    }
  }
  KVLAB_ASSERT(false && "heap object not found");
  return 0;
}

// A dump whose attributes declare `kv` heads, `T` tokens and `d` channels,
// with chunked datasets of that shape of which no chunk is written: a few KB
// on disk, any size as declared.
void write_empty_chunked(const std::string& path, hsize_t kv, hsize_t T, hsize_t d) {
  io::FileHandle f(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
  io::write_string_attribute(f.get(), "format", "kvdump", path);
  for (const auto& [name, v] : std::vector<std::pair<const char*, hsize_t>>{
           {"version", 1}, {"num_layers", 1}, {"num_heads", kv}, {"num_kv_heads", kv}, {"head_dim", d},
           {"prompt_len", 1}})
    io::write_int_attribute(f.get(), name, static_cast<std::int64_t>(v), path);
  io::PropListHandle lcpl(H5Pcreate(H5P_LINK_CREATE));
  H5Pset_create_intermediate_group(lcpl.get(), 1);
  io::PropListHandle dcpl(H5Pcreate(H5P_DATASET_CREATE));
  const hsize_t chunk[3] = {1, std::min<hsize_t>(T, 64), std::min<hsize_t>(d, 64)};
  H5Pset_chunk(dcpl.get(), 3, chunk);
  const hsize_t dims[3] = {kv, T, d};
  io::DataspaceHandle space(H5Screate_simple(3, dims, nullptr));
  for (const char* name : {"/layers/0/keys", "/layers/0/values"})
    io::DatasetHandle(
        H5Dcreate2(f.get(), name, H5T_IEEE_F32LE, space.get(), lcpl.get(), dcpl.get(), H5P_DEFAULT));
}

// Replaces `path` in the dump by a chunked copy of its data written with the
// given dataset-creation properties.
void rewrite_with(const std::string& file, const std::string& path, hid_t dcpl, bool write_data = true) {
  std::vector<float> data(1 * 8 * 4);
  {
    io::FileHandle f(H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
    io::DatasetHandle ds(H5Dopen2(f.get(), path.c_str(), H5P_DEFAULT));
    REQUIRE(H5Dread(ds.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data()) >= 0);
  }
  RawFile raw(file);
  raw.remove(path);
  const hsize_t dims[3] = {1, 8, 4};
  io::DataspaceHandle space(H5Screate_simple(3, dims, nullptr));
  io::DatasetHandle ds(H5Dcreate2(raw.id(), path.c_str(), H5T_IEEE_F32LE, space.get(), H5P_DEFAULT, dcpl,
                                  H5P_DEFAULT));
  REQUIRE(ds.valid());
  if (write_data) REQUIRE(H5Dwrite(ds.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data()) >= 0);
}

}  // namespace

TEST_CASE("a corrupt variable-length string attribute is an error, never an HDF5 heap read", "[io][hostile]") {
  io::silence_hdf5_errors();
  TempDir dir("kvlab_hostile_");
  const std::string good = dir.file("good.h5");
  write_tiny(good);
  const std::vector<unsigned char> bytes = read_bytes(good);
  const std::size_t id = find_heap_id(bytes, "kvdump");
  const std::string path = dir.file("bad.h5");
  auto corrupt = [&](std::size_t offset, unsigned char value) {
    std::vector<unsigned char> b = bytes;
    b[offset] = value;
    write_bytes(path, b);
  };

  SECTION("stored length smaller than the heap object (HDF5 overflows its buffer)") {
    corrupt(id, 1);
    REQUIRE_THROWS_WITH(DumpReader(path), Contains(path) && Contains("root attribute 'format'") &&
                                              Contains("stored length 1 differs from the 6 bytes"));
  }
  SECTION("stored length beyond the file") {
    corrupt(id + 3, 0x40);
    REQUIRE_THROWS_WITH(DumpReader(path), Contains(path) && Contains("root attribute 'format'") &&
                                              Contains("exceeds the file size"));
  }
  SECTION("object index past the collection's table (HDF5: SIGSEGV in H5HG_read)") {
    corrupt(id + 13, 0x40);
    REQUIRE_THROWS_WITH(DumpReader(path), Contains(path) && Contains("root attribute 'format'") &&
                                              Contains("heap object 16385 not found"));
  }
  SECTION("collection address elsewhere") {
    corrupt(id + 4, static_cast<unsigned char>(bytes[id + 4] + 8));
    REQUIRE_THROWS_WITH(DumpReader(path), Contains(path) && Contains("root attribute 'format'") &&
                                              Contains("no global heap collection at address"));
  }
  SECTION("the unmodified bytes still read") {
    write_bytes(path, bytes);
    CHECK(DumpReader(path).info().model == "hostile-input test");
  }
}

TEST_CASE("declared shapes are checked against the stored data before allocating", "[io][hostile]") {
  io::silence_hdf5_errors();
  TempDir dir("kvlab_hostile_");
  const std::string path = dir.file("huge.h5");

  SECTION("a million kv heads, no chunk written") {
    write_empty_chunked(path, 1 << 20, 64, 64);
    REQUIRE_THROWS_WITH(DumpReader(path), Contains(path) && Contains("/layers/0/keys") &&
                                              Contains("[1048576, 64, 64]") && Contains("only 0 chunk(s) are written"));
  }
  SECTION("2^28 tokens") {
    write_empty_chunked(path, 1, hsize_t{1} << 28, 8);
    REQUIRE_THROWS_WITH(DumpReader(path), Contains(path) && Contains("/layers/0/keys") &&
                                              Contains("only 0 chunk(s) are written"));
  }
  SECTION("head_dim 2^26") {
    write_empty_chunked(path, 1, 4, hsize_t{1} << 26);
    REQUIRE_THROWS_WITH(DumpReader(path), Contains(path) && Contains("/layers/0/keys") &&
                                              Contains("only 0 chunk(s) are written"));
  }
  SECTION("contiguous data never written") {
    write_tiny(path);
    RawFile(path).replace("/layers/1/values", {1, 8, 4}, H5T_IEEE_F32LE);
    REQUIRE_THROWS_WITH(DumpReader(path), Contains(path) && Contains("/layers/1/values") &&
                                              Contains("stores 0 bytes"));
  }
  SECTION("chunked data with one chunk missing") {
    write_tiny(path);
    io::PropListHandle dcpl(H5Pcreate(H5P_DATASET_CREATE));
    const hsize_t chunk[3] = {1, 4, 4};
    H5Pset_chunk(dcpl.get(), 3, chunk);
    rewrite_with(path, "/layers/0/keys", dcpl.get(), false);
    {  // write the first 4 tokens only: chunk 2 of 2 stays unwritten
      RawFile raw(path);
      io::DatasetHandle ds(H5Dopen2(raw.id(), "/layers/0/keys", H5P_DEFAULT));
      io::DataspaceHandle file_space(H5Dget_space(ds.get()));
      const hsize_t start[3] = {0, 0, 0}, count[3] = {1, 4, 4};
      H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start, nullptr, count, nullptr);
      io::DataspaceHandle mem(H5Screate_simple(3, count, nullptr));
      const std::vector<float> ones(16, 1.0f);
      REQUIRE(H5Dwrite(ds.get(), H5T_NATIVE_FLOAT, mem.get(), file_space.get(), H5P_DEFAULT, ones.data()) >= 0);
    }
    REQUIRE_THROWS_WITH(DumpReader(path), Contains(path) && Contains("/layers/0/keys") && Contains("in 2 chunks") &&
                                              Contains("only 1 chunk(s) are written"));
  }
  SECTION("deflate + shuffle + fletcher32 chunks are accepted and read back exactly") {
    write_tiny(path);
    const LayerData before = DumpReader(path).read_layer(1);
    io::PropListHandle dcpl(H5Pcreate(H5P_DATASET_CREATE));
    const hsize_t chunk[3] = {1, 3, 4};
    H5Pset_chunk(dcpl.get(), 3, chunk);
    H5Pset_shuffle(dcpl.get());
    H5Pset_deflate(dcpl.get(), 6);
    H5Pset_fletcher32(dcpl.get());
    rewrite_with(path, "/layers/1/values", dcpl.get());
    const LayerData after = DumpReader(path).read_layer(1);
    CHECK(after.values[0] == before.values[0]);
  }
}

TEST_CASE("only plain datasets stored in the dump are read", "[io][hostile]") {
  io::silence_hdf5_errors();
  TempDir dir("kvlab_hostile_");
  const std::string path = dir.file("links.h5");
  const std::string other = dir.file("other.h5");
  write_tiny(path);
  write_tiny(other);

  SECTION("external link") {
    RawFile raw(path);
    raw.remove("/layers/1/values");
    REQUIRE(H5Lcreate_external(other.c_str(), "/layers/1/values", raw.id(), "/layers/1/values", H5P_DEFAULT,
                               H5P_DEFAULT) >= 0);
    raw.file.reset();
    REQUIRE_THROWS_WITH(DumpReader(path), Contains(path) && Contains("/layers/1/values: is an external link to") &&
                                              Contains(other) && Contains("never follows links"));
  }
  SECTION("soft link to another dataset") {
    RawFile raw(path);
    raw.remove("/layers/1/values");
    REQUIRE(H5Lcreate_soft("/layers/1/keys", raw.id(), "/layers/1/values", H5P_DEFAULT, H5P_DEFAULT) >= 0);
    raw.file.reset();
    REQUIRE_THROWS_WITH(DumpReader(path), Contains(path) &&
                                              Contains("/layers/1/values: is a soft link to \"/layers/1/keys\""));
  }
  SECTION("a layer group reached through an external link is not opened") {
    RawFile raw(path);
    raw.remove("/layers/1");
    REQUIRE(H5Lcreate_external(other.c_str(), "/layers/1", raw.id(), "/layers/1", H5P_DEFAULT, H5P_DEFAULT) >= 0);
    raw.file.reset();
    REQUIRE_THROWS_WITH(DumpReader(path), Contains(path) && Contains("/layers/1: is an external link"));
  }
  SECTION("a group where a dataset is expected") {
    RawFile raw(path);
    raw.remove("/layers/0/queries");
    io::GroupHandle(H5Gcreate2(raw.id(), "/layers/0/queries", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    raw.file.reset();
    REQUIRE_THROWS_WITH(DumpReader(path), Contains(path) && Contains("/layers/0/queries: expected a dataset"));
  }
  SECTION("raw data in an external file") {
    RawFile raw(path);
    raw.remove("/layers/1/keys");
    io::PropListHandle dcpl(H5Pcreate(H5P_DATASET_CREATE));
    H5Pset_external(dcpl.get(), "/etc/passwd", 0, H5F_UNLIMITED);
    const hsize_t dims[3] = {1, 8, 4};
    io::DataspaceHandle space(H5Screate_simple(3, dims, nullptr));
    io::DatasetHandle(H5Dcreate2(raw.id(), "/layers/1/keys", H5T_IEEE_F32LE, space.get(), H5P_DEFAULT, dcpl.get(),
                                 H5P_DEFAULT));
    raw.file.reset();
    REQUIRE_THROWS_WITH(DumpReader(path), Contains(path) && Contains("/layers/1/keys: keeps its data in 1 external"));
  }
  SECTION("a filter kvlab does not vouch for") {
    io::PropListHandle dcpl(H5Pcreate(H5P_DATASET_CREATE));
    const hsize_t chunk[3] = {1, 8, 4};
    H5Pset_chunk(dcpl.get(), 3, chunk);
    H5Pset_scaleoffset(dcpl.get(), H5Z_SO_FLOAT_DSCALE, 3);
    rewrite_with(path, "/layers/0/values", dcpl.get());
    REQUIRE_THROWS_WITH(DumpReader(path), Contains(path) && Contains("/layers/0/values") &&
                                              Contains("filter 6") && Contains("scaleoffset"));
  }
}

TEST_CASE("token ids must be non-negative and below 2^31", "[io][hostile]") {
  io::silence_hdf5_errors();
  TempDir dir("kvlab_hostile_");
  const std::string path = dir.file("tokens.h5");
  std::vector<std::int64_t> ids = {1, 2, 3, 4, 5, 6, 7, 8};
  write_tiny(path, ids);
  CHECK(DumpReader(path).read_tokens() == ids);

  ids[5] = -3;
  write_tiny(path, ids);
  REQUIRE_THROWS_WITH(DumpReader(path), Contains(path) && Contains("/tokens: token id -3 at position 5 is negative"));
  ids[5] = std::int64_t{1} << 40;
  write_tiny(path, ids);
  REQUIRE_THROWS_WITH(DumpReader(path), Contains(path) && Contains("/tokens") && Contains("is too large"));
}

TEST_CASE("a read larger than the available memory is refused up front", "[io][hostile]") {
  const std::uint64_t available = io::available_memory_bytes();
  REQUIRE(available > 0);
  CHECK_NOTHROW(io::require_memory("f.h5", "one layer", 1000));
  if (available < UINT64_MAX / 2)
    REQUIRE_THROWS_WITH(io::require_memory("f.h5", "reading one layer", available * 2),
                        Contains("f.h5: reading one layer needs") && Contains("of memory available"));
}

TEST_CASE("a crash while probing a file becomes an error naming what was read", "[io][hostile]") {
  SECTION("killed by a signal") {
    REQUIRE_THROWS_WITH(io::probe_in_child("f.h5",
                                           [] {
                                             io::note_reading("root attribute 'format'");
                                             ::kill(::getpid(), SIGKILL);
                                           }),
                        Contains("f.h5: corrupt file: reading root attribute 'format' crashed (signal 9"));
  }
  SECTION("a segmentation fault (or the sanitizer's report of it)") {
    REQUIRE_THROWS_WITH(io::probe_in_child("f.h5",
                                           [] {
                                             io::note_reading("/layers/0/keys");
                                             ::raise(SIGSEGV);
                                           }),
                        Contains("f.h5: corrupt file: reading /layers/0/keys"));
  }
  SECTION("a clean error in the child lets the parent repeat the work") {
    CHECK_NOTHROW(io::probe_in_child("f.h5", [] { fail("f.h5: bad"); }));
  }
  SECTION("a hang is stopped at the timeout") {
    io::set_probe_timeout(std::chrono::milliseconds(300));
    REQUIRE_THROWS_WITH(io::probe_in_child("f.h5",
                                           [] {
                                             io::note_reading("/tokens");
                                             std::this_thread::sleep_for(std::chrono::seconds(30));
                                           }),
                        Contains("f.h5: corrupt file: reading /tokens did not finish within 0.3 s"));
    io::set_probe_timeout(std::chrono::seconds(60));
  }
  SECTION("probing off runs nothing in a child") {
    io::set_probing(false);
    CHECK_NOTHROW(io::probe_in_child("f.h5", [] { ::kill(::getpid(), SIGKILL); }));
    io::set_probing(true);
  }
}
