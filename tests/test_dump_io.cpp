// kvdump writer → reader round trips and every validation error of DumpReader.
#include <hdf5.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>

#include "kvlab/core/error.hpp"
#include "kvlab/core/fp16.hpp"
#include "kvlab/core/rng.hpp"
#include "kvlab/io/dump_reader.hpp"
#include "kvlab/io/dump_writer.hpp"
#include "kvlab/io/hdf5_errors.hpp"
#include "kvlab/io/hdf5_handle.hpp"
#include "test_support.hpp"

using namespace kvlab;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;
using test::RawFile;
using test::TempDir;

namespace {

DumpInfo small_info(bool queries = true, int heads = 4, int kv_heads = 2) {
  DumpInfo info;
  info.num_layers = 2;
  info.num_heads = heads;
  info.num_kv_heads = kv_heads;
  info.head_dim = 8;
  info.seq_len = 16;
  info.prompt_len = 10;
  info.model = "unit-test model";
  info.text = "hello\nworld";
  info.rope = RopeInfo{10000.0, RopeStyle::Gptj};
  info.has_queries = queries;
  return info;
}

std::vector<Matrix> random_heads(int heads, int T, int d, Rng& rng) {
  std::vector<Matrix> out(static_cast<std::size_t>(heads), Matrix(T, d));
  for (Matrix& m : out)
    for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = static_cast<float>(rng.normal() * 3.0);
  return out;
}

LayerData make_layer(const DumpInfo& info, int layer) {
  Rng rng = Rng::for_block(42, layer, 0);
  LayerData data;
  data.layer = layer;
  data.keys = random_heads(info.num_kv_heads, info.seq_len, info.head_dim, rng);
  data.values = random_heads(info.num_kv_heads, info.seq_len, info.head_dim, rng);
  if (info.has_queries) data.queries = random_heads(info.num_heads, info.seq_len, info.head_dim, rng);
  return data;
}

std::vector<LayerData> write_dump(const std::string& path, const DumpInfo& info, bool float16 = false,
                                  bool tokens = true) {
  std::vector<LayerData> layers;
  DumpWriter writer(path, info, DumpWriteOptions{float16});
  for (int l = 0; l < info.num_layers; ++l) {
    layers.push_back(make_layer(info, l));
    writer.write_layer(layers.back());
  }
  if (tokens) {
    std::vector<std::int64_t> ids(static_cast<std::size_t>(info.seq_len));
    for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<std::int64_t>(i * 1000 + 7);
    writer.write_tokens(ids);
  }
  writer.close();
  return layers;
}

std::vector<float> flatten(const std::vector<Matrix>& heads) {
  std::vector<float> out;
  for (const Matrix& m : heads) out.insert(out.end(), m.data(), m.data() + m.size());
  return out;
}

}  // namespace

TEST_CASE("dump round trip float32 is exact, with GQA, queries, tokens and attributes", "[io]") {
  io::silence_hdf5_errors();
  TempDir dir("kvlab_dump_io_");
  const std::string path = dir.file("rt32.h5");
  const DumpInfo info = small_info();
  const auto layers = write_dump(path, info, /*float16=*/false);

  const DumpReader reader(path);
  const DumpInfo& got = reader.info();
  CHECK(got.path == path);
  CHECK(got.num_layers == 2);
  CHECK(got.num_heads == 4);
  CHECK(got.num_kv_heads == 2);
  CHECK(got.group_size() == 2);
  CHECK(got.head_dim == 8);
  CHECK(got.seq_len == 16);
  CHECK(got.prompt_len == 10);
  CHECK(got.model == "unit-test model");
  CHECK(got.text == "hello\nworld");
  REQUIRE(got.rope.has_value());
  CHECK(got.rope->theta == 10000.0);
  CHECK(got.rope->style == RopeStyle::Gptj);
  CHECK(got.has_queries);
  CHECK(got.has_tokens);
  CHECK(got.dtype == "float32");

  for (int l = 0; l < 2; ++l) {
    const LayerData data = reader.read_layer(l);
    CHECK(data.layer == l);
    REQUIRE(data.keys.size() == 2);
    REQUIRE(data.values.size() == 2);
    REQUIRE(data.queries.size() == 4);
    for (int h = 0; h < 2; ++h) {
      CHECK(data.keys[h] == layers[l].keys[h]);
      CHECK(data.values[h] == layers[l].values[h]);
    }
    for (int h = 0; h < 4; ++h) CHECK(data.queries[h] == layers[l].queries[h]);
  }
  const auto tokens = reader.read_tokens();
  REQUIRE(tokens.size() == 16);
  CHECK(tokens[3] == 3007);

  SECTION("without queries and with max_tokens") {
    const LayerData data = reader.read_layer(1, /*with_queries=*/false, /*max_tokens=*/5);
    CHECK(data.queries.empty());
    REQUIRE(data.keys[1].rows() == 5);
    CHECK(data.keys[1] == layers[1].keys[1].topRows(5));
    CHECK(data.values[0] == layers[1].values[0].topRows(5));
    CHECK(reader.read_layer(0, true, 1000).keys[0].rows() == 16);  // clamped to seq_len
    CHECK(reader.read_layer(0, true, 0).keys[0].rows() == 0);
  }
  SECTION("layer out of range") {
    REQUIRE_THROWS_WITH(reader.read_layer(2), Contains(path) && Contains("layer 2 out of range"));
    REQUIRE_THROWS_AS(reader.read_layer(-1), Error);
  }
}

TEST_CASE("dump round trip float16 rounds like an FP16 cache and is readable", "[io]") {
  TempDir dir("kvlab_dump_io_");
  const std::string path = dir.file("rt16.h5");
  DumpInfo info = small_info(/*queries=*/false, /*heads=*/8, /*kv_heads=*/2);
  info.rope.reset();
  info.model.clear();
  info.text.clear();
  {
    DumpWriter writer(path, info);  // float16 is the default
    for (int l = 0; l < info.num_layers; ++l) {
      LayerData data = make_layer(info, l);
      data.keys[0](0, 0) = 0.1f;         // not representable: rounds
      data.keys[0](0, 1) = 1.0f / 3.0f;  // rounds
      data.keys[0](0, 2) = 65504.0f;     // max half
      data.keys[0](0, 3) = 1e-6f;        // subnormal half
      writer.write_layer(data);
    }
    writer.close();
  }
  const DumpReader reader(path);
  CHECK(reader.info().dtype == "float16");
  CHECK_FALSE(reader.info().has_queries);
  CHECK_FALSE(reader.info().has_tokens);
  CHECK_FALSE(reader.info().rope.has_value());
  CHECK(reader.info().model.empty());
  CHECK(reader.info().group_size() == 4);
  for (int l = 0; l < info.num_layers; ++l) {
    LayerData expected = make_layer(info, l);
    expected.keys[0](0, 0) = 0.1f;
    expected.keys[0](0, 1) = 1.0f / 3.0f;
    expected.keys[0](0, 2) = 65504.0f;
    expected.keys[0](0, 3) = 1e-6f;
    const LayerData got = reader.read_layer(l);
    CHECK(got.queries.empty());
    for (int h = 0; h < info.num_kv_heads; ++h) {
      CHECK(got.keys[h] == expected.keys[h].unaryExpr([](float x) { return round_to_fp16(x); }));
      CHECK(got.values[h] == expected.values[h].unaryExpr([](float x) { return round_to_fp16(x); }));
    }
    CHECK(got.keys[0](0, 0) != 0.1f);
    CHECK(got.keys[0](0, 0) == Approx(0.1f).epsilon(1e-3));
    CHECK(got.keys[0](0, 2) == 65504.0f);
  }
  REQUIRE_THROWS_WITH(reader.read_tokens(), Contains(path) && Contains("/tokens"));
}

TEST_CASE("writer rejects values beyond the float16 range and wrong shapes", "[io]") {
  TempDir dir("kvlab_dump_io_");
  const std::string path = dir.file("w.h5");
  const DumpInfo info = small_info();
  DumpWriter writer(path, info);
  LayerData data = make_layer(info, 0);
  data.values[1](3, 2) = 1e6f;
  REQUIRE_THROWS_WITH(writer.write_layer(data),
                      Contains("/layers/0/values") && Contains("head 1, token 3, channel 2") && Contains("float16"));
  LayerData bad = make_layer(info, 1);
  bad.queries.pop_back();
  REQUIRE_THROWS_WITH(writer.write_layer(bad), Contains("/layers/1/queries") && Contains("expected 4 heads"));
  REQUIRE_THROWS_WITH(writer.close(), Contains("never written"));
}

TEST_CASE("reader accepts float64 datasets, big-endian halves and any integer / string attribute type", "[io]") {
  TempDir dir("kvlab_dump_io_");
  const std::string path = dir.file("f64.h5");
  const DumpInfo info = small_info();
  const auto layers = write_dump(path, info);
  const std::vector<float> vals = flatten(layers[1].values);
  std::vector<double> vals64(vals.begin(), vals.end());
  for (double& v : vals64) v += 1e-12;  // needs float64 storage, rounds back to the float
  const std::vector<float> keys = flatten(layers[0].keys);
  {
    RawFile raw(path);
    raw.replace("/layers/1/values", {2, 16, 8}, H5T_IEEE_F64LE, vals64.data(), H5T_NATIVE_DOUBLE);
    // float16, big endian: goes through HDF5's conversion instead of the fast path.
    io::DatatypeHandle be_half = io::make_float16_type();
    H5Tset_order(be_half.get(), H5T_ORDER_BE);
    raw.replace("/layers/0/keys", {2, 16, 8}, be_half.get(), keys.data());
    // Attributes of other integer widths and a fixed-length string.
    raw.remove_attr("num_heads");
    const std::uint8_t heads = 4;
    io::DataspaceHandle scalar(H5Screate(H5S_SCALAR));
    io::AttributeHandle a(H5Acreate2(raw.id(), "num_heads", H5T_STD_U8BE, scalar.get(), H5P_DEFAULT, H5P_DEFAULT));
    H5Awrite(a.get(), H5T_NATIVE_UINT8, &heads);
    raw.remove_attr("format");
    io::DatatypeHandle fixed(H5Tcopy(H5T_C_S1));
    H5Tset_size(fixed.get(), 10);
    H5Tset_strpad(fixed.get(), H5T_STR_NULLPAD);
    io::AttributeHandle f(H5Acreate2(raw.id(), "format", fixed.get(), scalar.get(), H5P_DEFAULT, H5P_DEFAULT));
    const char text[10] = {'k', 'v', 'd', 'u', 'm', 'p', 0, 0, 0, 0};
    H5Awrite(f.get(), fixed.get(), text);
  }
  const DumpReader reader(path);
  CHECK(reader.info().num_heads == 4);
  CHECK(reader.info().dtype == "float16");
  const LayerData l1 = reader.read_layer(1);
  CHECK(l1.values[0] == layers[1].values[0]);
  CHECK(l1.values[1] == layers[1].values[1]);
  const LayerData l0 = reader.read_layer(0);
  CHECK(l0.keys[1] == layers[0].keys[1].unaryExpr([](float x) { return round_to_fp16(x); }));
}

TEST_CASE("reader reports every validation error with file and key", "[io]") {
  TempDir dir("kvlab_dump_io_");
  const std::string path = dir.file("bad.h5");
  const DumpInfo info = small_info();
  write_dump(path, info);

  SECTION("missing attribute") {
    RawFile(path).remove_attr("head_dim");
    REQUIRE_THROWS_WITH(DumpReader(path), Contains(path) && Contains("missing root attribute 'head_dim'"));
  }
  SECTION("wrong format string") {
    io::write_string_attribute(RawFile(path).id(), "format", "kvcache", path);
    REQUIRE_THROWS_WITH(DumpReader(path), Contains(path) && Contains("'format'") && Contains("\"kvcache\""));
  }
  SECTION("format of the wrong type") {
    RawFile raw(path);
    io::write_int_attribute(raw.id(), "format", 1, path);
    raw.file.reset();
    REQUIRE_THROWS_WITH(DumpReader(path), Contains(path) && Contains("'format'") && Contains("expected a string"));
  }
  SECTION("version 2") {
    io::write_int_attribute(RawFile(path).id(), "version", 2, path);
    REQUIRE_THROWS_WITH(DumpReader(path), Contains(path) && Contains("'version'") && Contains("expected 1, found 2"));
  }
  SECTION("non-positive shape attribute") {
    io::write_int_attribute(RawFile(path).id(), "num_kv_heads", 0, path);
    REQUIRE_THROWS_WITH(DumpReader(path), Contains(path) && Contains("'num_kv_heads'") && Contains("positive"));
  }
  SECTION("inconsistent heads") {
    io::write_int_attribute(RawFile(path).id(), "num_heads", 3, path);
    REQUIRE_THROWS_WITH(DumpReader(path), Contains(path) && Contains("num_heads (3)") && Contains("num_kv_heads (2)"));
  }
  SECTION("prompt longer than the sequence") {
    io::write_int_attribute(RawFile(path).id(), "prompt_len", 17, path);
    REQUIRE_THROWS_WITH(DumpReader(path), Contains(path) && Contains("'prompt_len'") && Contains("found 17"));
  }
  SECTION("heads in the dataset disagree with num_kv_heads") {
    io::write_int_attribute(RawFile(path).id(), "num_kv_heads", 4, path);
    REQUIRE_THROWS_WITH(DumpReader(path), Contains(path) && Contains("/layers/0/keys") &&
                                              Contains("expected shape [4, 16, 8]") && Contains("found [2, 16, 8]"));
  }
  SECTION("missing dataset") {
    RawFile(path).remove("/layers/1/values");
    REQUIRE_THROWS_WITH(DumpReader(path), Contains(path) && Contains("missing dataset /layers/1/values"));
  }
  SECTION("missing layer group") {
    RawFile(path).remove("/layers/1");
    REQUIRE_THROWS_WITH(DumpReader(path), Contains(path) && Contains("missing dataset /layers/1/keys"));
  }
  SECTION("wrong rank") {
    RawFile(path).replace("/layers/1/keys", {16, 8}, H5T_IEEE_F32LE);
    REQUIRE_THROWS_WITH(DumpReader(path), Contains(path) && Contains("/layers/1/keys") && Contains("expected rank 3") &&
                                              Contains("found rank 2 [16, 8]"));
  }
  SECTION("wrong shape") {
    RawFile(path).replace("/layers/1/values", {2, 16, 9}, H5T_IEEE_F32LE);
    REQUIRE_THROWS_WITH(DumpReader(path), Contains(path) && Contains("/layers/1/values") &&
                                              Contains("expected shape [2, 16, 8]") && Contains("found [2, 16, 9]"));
  }
  SECTION("seq_len disagrees between layers") {
    RawFile(path).replace("/layers/1/keys", {2, 15, 8}, H5T_IEEE_F32LE);
    REQUIRE_THROWS_WITH(DumpReader(path), Contains("/layers/1/keys") && Contains("found [2, 15, 8]"));
  }
  SECTION("queries with the wrong number of heads") {
    RawFile(path).replace("/layers/0/queries", {2, 16, 8}, H5T_IEEE_F32LE);
    REQUIRE_THROWS_WITH(DumpReader(path), Contains(path) && Contains("/layers/0/queries") &&
                                              Contains("expected shape [4, 16, 8]"));
  }
  SECTION("queries in only some layers") {
    RawFile(path).remove("/layers/1/queries");
    REQUIRE_THROWS_WITH(DumpReader(path), Contains(path) && Contains("/layers/1/queries") &&
                                              Contains("every layer or none"));
  }
  SECTION("queries only in a later layer") {
    RawFile(path).remove("/layers/0/queries");
    REQUIRE_THROWS_WITH(DumpReader(path), Contains("/layers/1/queries") && Contains("every layer or none"));
  }
  SECTION("integer elements") {
    RawFile(path).replace("/layers/0/values", {2, 16, 8}, H5T_STD_I32LE);
    REQUIRE_THROWS_WITH(DumpReader(path), Contains(path) && Contains("/layers/0/values") && Contains("found int32"));
  }
  SECTION("tokens of the wrong length") {
    RawFile(path).replace("/tokens", {15}, H5T_STD_I64LE);
    REQUIRE_THROWS_WITH(DumpReader(path), Contains(path) && Contains("/tokens") && Contains("found [15]"));
  }
  SECTION("rope_style unknown") {
    io::write_string_attribute(RawFile(path).id(), "rope_style", "spiral", path);
    REQUIRE_THROWS_WITH(DumpReader(path), Contains(path) && Contains("'rope_style'") && Contains("spiral"));
  }
}

TEST_CASE("reader names the first non-finite value", "[io]") {
  TempDir dir("kvlab_dump_io_");
  for (const bool f16 : {false, true}) {
    for (const float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
      const std::string path = dir.file(fmt::format("nan_{}_{}.h5", f16, std::isnan(bad)));
      const DumpInfo info = small_info();
      {
        DumpWriter writer(path, info, DumpWriteOptions{f16});
        for (int l = 0; l < 2; ++l) {
          LayerData data = make_layer(info, l);
          if (l == 1) {
            data.keys[1](3, 2) = bad;
            data.keys[1](5, 0) = bad;  // a later one: not reported
          }
          writer.write_layer(data);
        }
        writer.close();
      }
      const DumpReader reader(path);  // structure is fine
      REQUIRE_NOTHROW(reader.read_layer(0));
      REQUIRE_THROWS_WITH(reader.read_layer(1), Contains(path) && Contains("/layers/1/keys") &&
                                                    Contains("[head 1, token 3, channel 2]") &&
                                                    Contains(std::isnan(bad) ? "nan" : "inf"));
      REQUIRE_NOTHROW(reader.read_layer(1, true, 3));  // the bad token is not read
    }
  }
}

TEST_CASE("reader distinguishes missing, non-HDF5, empty and truncated files", "[io]") {
  TempDir dir("kvlab_dump_io_");
  SECTION("missing file") {
    const std::string path = dir.file("nope.h5");
    REQUIRE_THROWS_WITH(DumpReader(path), Contains(path) && Contains("no such file"));
  }
  SECTION("directory") {
    REQUIRE_THROWS_WITH(DumpReader(dir.path.string()), Contains("is a directory"));
  }
  SECTION("not HDF5") {
    const std::string path = dir.file("text.h5");
    std::ofstream(path) << "this is not an HDF5 file, just some text\n";
    REQUIRE_THROWS_WITH(DumpReader(path), Contains(path) && Contains("not an HDF5 file"));
  }
  SECTION("empty") {
    const std::string path = dir.file("empty.h5");
    std::ofstream(path).flush();
    REQUIRE_THROWS_WITH(DumpReader(path), Contains(path) && Contains("not an HDF5 file"));
  }
  SECTION("truncated") {
    const std::string good = dir.file("good.h5");
    write_dump(good, small_info());
    const auto size = fs::file_size(good);
    for (const double fraction : {0.5, 0.9, 0.999}) {
      const std::string path = dir.file(fmt::format("trunc_{}.h5", fraction));
      fs::copy_file(good, path, fs::copy_options::overwrite_existing);
      fs::resize_file(path, static_cast<std::uintmax_t>(static_cast<double>(size) * fraction));
      try {
        const DumpReader reader(path);
        for (int l = 0; l < reader.info().num_layers; ++l) reader.read_layer(l);
        FAIL("truncated file " << path << " was accepted");
      } catch (const Error& e) {
        CHECK_THAT(e.what(), Contains(path) && Contains("truncated"));
      }
    }
  }
}
