// The optional attention description of a kvdump (docs/dump-format.md,
// "Attention and RoPE"): DumpReader's validation errors, defaults for older
// files, and the model-in-the-loop forward refusing what it cannot compute.
#include <hdf5.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <string>

#include "kvlab/core/error.hpp"
#include "kvlab/io/dump_reader.hpp"
#include "kvlab/io/dump_writer.hpp"
#include "kvlab/io/hdf5_handle.hpp"
#include "kvlab/model/dump_attention_check.hpp"
#include "test_support.hpp"

using namespace kvlab;
using Catch::Matchers::Contains;
using test::RawFile;
using test::TempDir;

namespace {

// A valid 2-layer dump (head_dim 8, rope_theta 10000 neox) without any
// attention attribute.
std::string plain_dump(const TempDir& dir, const std::string& name = "dump.h5") {
  const std::string path = dir.file(name);
  DumpInfo info = test::dump_shape(2, 4, 2, 8, 12, 8);
  info.rope = RopeInfo{10000.0, RopeStyle::Neox};
  test::write_random_dump(path, info, false);
  return path;
}

// An attribute on the group /layers/<layer>.
template <class Write>
void on_layer(const std::string& path, int layer, Write&& write) {
  RawFile raw(path);
  const std::string g = "/layers/" + std::to_string(layer);
  io::GroupHandle group(H5Gopen2(raw.id(), g.c_str(), H5P_DEFAULT));
  REQUIRE(group.valid());
  write(group.get());
}

void write_freqs(const std::string& path, const std::string& dataset, std::vector<double> w) {
  RawFile(path).create(dataset, {w.size()}, H5T_IEEE_F64LE, w.data(), H5T_NATIVE_DOUBLE);
}

}  // namespace

TEST_CASE("dumps without attention attributes read with the old defaults", "[io][attention_attrs]") {
  TempDir dir("kvlab_attn_attrs_");
  const DumpReader reader(plain_dump(dir));
  const DumpInfo& info = reader.info();
  CHECK_FALSE(info.attn_scale.has_value());
  CHECK_FALSE(info.attn_logit_softcap.has_value());
  CHECK_FALSE(info.describes_attention());
  for (int l = 0; l < info.num_layers; ++l) {
    const AttentionRule r = info.attention(l);
    CHECK(r.scale_for(8) == 1.0 / std::sqrt(8.0));
    CHECK_FALSE(r.capped());
    CHECK(r.window == 0);
    CHECK(r.first_visible(11) == 0);
    const std::optional<RopeInfo> rope = info.rope_of(l);
    REQUIRE(rope.has_value());
    CHECK(rope->theta == 10000.0);
    CHECK(rope->inv_freq.empty());
    CHECK(rope->rotated_channels(8) == 8);
    CHECK(rope->attention_scaling == 1.0);
    // Theta frequencies over the whole head, exactly as before.
    const std::vector<double> w = rope->frequencies(8);
    REQUIRE(w.size() == 4);
    for (int i = 0; i < 4; ++i) CHECK(w[static_cast<std::size_t>(i)] == std::pow(10000.0, -2.0 * i / 8));
  }
}

TEST_CASE("attention attributes are read, with layer overrides", "[io][attention_attrs]") {
  TempDir dir("kvlab_attn_attrs_");
  const std::string path = plain_dump(dir);
  {
    RawFile raw(path);
    io::write_float_attribute(raw.id(), "attn_scale", 0.0625, path);
    io::write_float_attribute(raw.id(), "attn_logit_softcap", 50.0, path);
    io::write_int_attribute(raw.id(), "rotary_dim", 6, path);
    io::write_float_attribute(raw.id(), "rope_attention_scaling", 1.5, path);
  }
  write_freqs(path, "/rope_inv_freq", {1.0, 0.1, 0.01});
  write_freqs(path, "/layers/1/rope_inv_freq", {2.0, 0.2, 0.02});
  on_layer(path, 0, [&](hid_t g) { io::write_int_attribute(g, "sliding_window", 5, path); });
  on_layer(path, 1, [&](hid_t g) { io::write_float_attribute(g, "rope_attention_scaling", 1.0, path); });
  const DumpReader reader(path);
  const DumpInfo& info = reader.info();
  CHECK(info.describes_attention());
  const AttentionRule r0 = info.attention(0), r1 = info.attention(1);
  CHECK(r0.scale_for(8) == 0.0625);
  CHECK(r0.softcap == 50.0);
  CHECK(r0.window == 5);
  CHECK(r0.first_visible(4) == 0);
  CHECK(r0.first_visible(11) == 7);  // sees 7..11: five positions
  CHECK(r1.window == 0);
  const RopeInfo a = *info.rope_of(0), b = *info.rope_of(1);
  CHECK(a.inv_freq == std::vector<double>{1.0, 0.1, 0.01});
  CHECK(a.rotated_channels(8) == 6);
  CHECK(a.attention_scaling == 1.5);
  CHECK(a.theta == 10000.0);  // kept, but the frequencies take precedence
  CHECK(a.frequencies(8) == a.inv_freq);
  CHECK(b.inv_freq == std::vector<double>{2.0, 0.2, 0.02});
  CHECK(b.attention_scaling == 1.0);
  CHECK(a.pair(2, 8) == std::pair<int, int>{2, 5});  // neox over rotary_dim 6: (i, i + 3)
}

TEST_CASE("DumpWriter writes the attention description that DumpReader reads back", "[io][attention_attrs]") {
  TempDir dir("kvlab_attn_attrs_");
  const std::string path = dir.file("written.h5");
  DumpInfo info = test::dump_shape(3, 2, 1, 8, 6, 4, false);
  info.rope = RopeInfo{500000.0, RopeStyle::Gptj};
  info.rope->inv_freq = {1.0, 0.25, 0.0625};
  info.rope->attention_scaling = 1.25;
  info.rotary_dim = 6;
  info.attn_scale = 0.03125;
  info.attn_logit_softcap = 30.0;
  info.layer_attention.assign(3, {});
  info.layer_attention[0].sliding_window = 4;
  info.layer_attention[2].sliding_window = 2;
  info.layer_attention[1].rope_inv_freq = {0.5, 0.05, 0.005};
  info.layer_attention[1].rope_attention_scaling = 2.0;
  test::write_random_dump(path, info, false);
  const DumpInfo got = DumpReader(path).info();
  CHECK(got.attn_scale == info.attn_scale);
  CHECK(got.attn_logit_softcap == info.attn_logit_softcap);
  CHECK(got.rotary_dim == 6);
  CHECK(got.rope_style == RopeStyle::Gptj);
  for (int l = 0; l < 3; ++l) {
    INFO("layer " << l);
    const AttentionRule want = info.attention(l), have = got.attention(l);
    CHECK(have.scale == want.scale);
    CHECK(have.softcap == want.softcap);
    CHECK(have.window == want.window);
    const RopeInfo a = *info.rope_of(l), b = *got.rope_of(l);
    CHECK(b.theta == a.theta);
    CHECK(b.style == a.style);
    CHECK(b.inv_freq == a.inv_freq);
    CHECK(b.rotary_dim == 6);
    CHECK(b.attention_scaling == a.attention_scaling);
  }
  CHECK(got.rope_of(1)->inv_freq == std::vector<double>{0.5, 0.05, 0.005});

  // A layer list that does not match the layers is refused before any file is made.
  info.layer_attention.resize(2);
  REQUIRE_THROWS_WITH(DumpWriter(dir.file("bad.h5"), info), Contains("2 layer entries for 3 layers"));
}

TEST_CASE("attention attributes: every invalid value is one error naming the file and the attribute",
          "[io][attention_attrs]") {
  TempDir dir("kvlab_attn_attrs_");
  const std::string path = plain_dump(dir);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();

  SECTION("attn_scale <= 0") {
    io::write_float_attribute(RawFile(path).id(), "attn_scale", -0.5, path);
    REQUIRE_THROWS_WITH(DumpReader(path), Contains(path) && Contains("root attribute 'attn_scale'") &&
                                              Contains("positive finite") && Contains("-0.5"));
  }
  SECTION("attn_scale nan") {
    io::write_float_attribute(RawFile(path).id(), "attn_scale", nan, path);
    REQUIRE_THROWS_WITH(DumpReader(path), Contains(path) && Contains("'attn_scale'") && Contains("nan"));
  }
  SECTION("attn_scale not a number") {
    io::write_string_attribute(RawFile(path).id(), "attn_scale", "0.1", path);
    REQUIRE_THROWS_WITH(DumpReader(path), Contains(path) && Contains("attn_scale"));
  }
  SECTION("attn_logit_softcap 0 or inf") {
    io::write_float_attribute(RawFile(path).id(), "attn_logit_softcap", 0.0, path);
    REQUIRE_THROWS_WITH(DumpReader(path), Contains(path) && Contains("'attn_logit_softcap'") && Contains("found 0"));
    RawFile(path).remove_attr("attn_logit_softcap");
    io::write_float_attribute(RawFile(path).id(), "attn_logit_softcap", inf, path);
    REQUIRE_THROWS_WITH(DumpReader(path), Contains("'attn_logit_softcap'") && Contains("inf"));
  }
  SECTION("rotary_dim odd, too large, or not an integer") {
    io::write_int_attribute(RawFile(path).id(), "rotary_dim", 5, path);
    REQUIRE_THROWS_WITH(DumpReader(path), Contains(path) && Contains("'rotary_dim'") &&
                                              Contains("even integer in [2, head_dim 8]") && Contains("found 5"));
    RawFile(path).remove_attr("rotary_dim");
    io::write_int_attribute(RawFile(path).id(), "rotary_dim", 10, path);
    REQUIRE_THROWS_WITH(DumpReader(path), Contains("'rotary_dim'") && Contains("found 10"));
    RawFile(path).remove_attr("rotary_dim");
    io::write_int_attribute(RawFile(path).id(), "rotary_dim", 0, path);
    REQUIRE_THROWS_WITH(DumpReader(path), Contains("'rotary_dim'") && Contains("found 0"));
    RawFile(path).remove_attr("rotary_dim");
    io::write_float_attribute(RawFile(path).id(), "rotary_dim", 6.0, path);
    REQUIRE_THROWS_WITH(DumpReader(path), Contains("rotary_dim") && Contains("expected an integer"));
  }
  SECTION("rope_attention_scaling, root and layer") {
    io::write_float_attribute(RawFile(path).id(), "rope_attention_scaling", 0.0, path);
    REQUIRE_THROWS_WITH(DumpReader(path), Contains(path) && Contains("root attribute 'rope_attention_scaling'"));
    RawFile(path).remove_attr("rope_attention_scaling");
    on_layer(path, 1, [&](hid_t g) { io::write_float_attribute(g, "rope_attention_scaling", -1.0, path); });
    REQUIRE_THROWS_WITH(DumpReader(path), Contains(path) && Contains("/layers/1 attribute 'rope_attention_scaling'") &&
                                              Contains("found -1"));
  }
  SECTION("sliding_window < 1 or not an integer") {
    on_layer(path, 1, [&](hid_t g) { io::write_int_attribute(g, "sliding_window", 0, path); });
    REQUIRE_THROWS_WITH(DumpReader(path), Contains(path) && Contains("/layers/1 attribute 'sliding_window'") &&
                                              Contains(">= 1") && Contains("found 0"));
  }
  SECTION("sliding_window as a float") {
    on_layer(path, 0, [&](hid_t g) { io::write_float_attribute(g, "sliding_window", 4.0, path); });
    REQUIRE_THROWS_WITH(DumpReader(path), Contains(path) && Contains("sliding_window") &&
                                              Contains("expected an integer"));
  }
  SECTION("/rope_inv_freq of the wrong length (rotary_dim defaults to head_dim)") {
    write_freqs(path, "/rope_inv_freq", {1.0, 0.1, 0.01});
    REQUIRE_THROWS_WITH(DumpReader(path), Contains(path) && Contains("/rope_inv_freq") && Contains("shape [4]") &&
                                              Contains("found [3]"));
  }
  SECTION("/rope_inv_freq against rotary_dim") {
    io::write_int_attribute(RawFile(path).id(), "rotary_dim", 4, path);
    write_freqs(path, "/rope_inv_freq", {1.0, 0.1, 0.01});
    REQUIRE_THROWS_WITH(DumpReader(path), Contains("/rope_inv_freq") && Contains("rotary_dim 4") &&
                                              Contains("found [3]"));
  }
  SECTION("/rope_inv_freq with a non-positive or non-finite value") {
    write_freqs(path, "/rope_inv_freq", {1.0, 0.1, -0.01, 0.001});
    REQUIRE_THROWS_WITH(DumpReader(path), Contains(path) && Contains("/rope_inv_freq") &&
                                              Contains("positive finite") && Contains("at [2]"));
    RawFile(path).remove("/rope_inv_freq");
    write_freqs(path, "/rope_inv_freq", {1.0, inf, 0.01, 0.001});
    REQUIRE_THROWS_WITH(DumpReader(path), Contains("/rope_inv_freq") && Contains("inf at [1]"));
  }
  SECTION("/rope_inv_freq of integers") {
    const std::int64_t w[4] = {1, 1, 1, 1};
    RawFile(path).create("/rope_inv_freq", {4}, H5T_STD_I64LE, w, H5T_NATIVE_INT64);
    REQUIRE_THROWS_WITH(DumpReader(path), Contains("/rope_inv_freq") && Contains("expected float64 elements") &&
                                              Contains("int64"));
  }
  SECTION("/layers/L/rope_inv_freq of the wrong shape") {
    const double w[2][2] = {{1, 1}, {1, 1}};
    RawFile(path).create("/layers/1/rope_inv_freq", {2, 2}, H5T_IEEE_F64LE, w, H5T_NATIVE_DOUBLE);
    REQUIRE_THROWS_WITH(DumpReader(path), Contains(path) && Contains("/layers/1/rope_inv_freq") &&
                                              Contains("found [2, 2]"));
  }
}

TEST_CASE("model in the loop refuses attention the forward cannot compute", "[model][attention_attrs]") {
  TempDir dir("kvlab_attn_attrs_");
  const std::string path = plain_dump(dir);
  ModelConfig c;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 8;
  c.rope_theta = 10000.0;
  c.rope_style = RopeStyle::Neox;
  check_forward_attention(DumpReader(path).info(), c, 12);  // an older dump: nothing to refuse

  SECTION("1/sqrt(head_dim) written out is accepted, another scale is not") {
    io::write_float_attribute(RawFile(path).id(), "attn_scale", std::pow(8.0, -0.5), path);
    check_forward_attention(DumpReader(path).info(), c, 12);
    RawFile(path).remove_attr("attn_scale");
    io::write_float_attribute(RawFile(path).id(), "attn_scale", 0.25, path);
    REQUIRE_THROWS_WITH(check_forward_attention(DumpReader(path).info(), c, 12),
                        Contains(path) && Contains("attn_scale 0.25"));
  }
  SECTION("soft-cap") {
    io::write_float_attribute(RawFile(path).id(), "attn_logit_softcap", 30.0, path);
    REQUIRE_THROWS_WITH(check_forward_attention(DumpReader(path).info(), c, 12), Contains("soft-cap"));
  }
  SECTION("a window narrower than the run, but not a wider one") {
    on_layer(path, 1, [&](hid_t g) { io::write_int_attribute(g, "sliding_window", 12, path); });
    check_forward_attention(DumpReader(path).info(), c, 12);
    REQUIRE_THROWS_WITH(check_forward_attention(DumpReader(path).info(), c, 13),
                        Contains("/layers/1 sliding_window 12"));
  }
  SECTION("the model's own frequencies pass; others, partial rotary and scaling do not") {
    std::vector<double> w;
    for (int i = 0; i < 4; ++i) w.push_back(static_cast<double>(static_cast<float>(std::pow(10000.0, -2.0 * i / 8))));
    write_freqs(path, "/rope_inv_freq", w);
    check_forward_attention(DumpReader(path).info(), c, 12);
    w[3] *= 0.5;
    write_freqs(path, "/layers/1/rope_inv_freq", w);
    REQUIRE_THROWS_WITH(check_forward_attention(DumpReader(path).info(), c, 12),
                        Contains("layer 1 RoPE frequency 3"));
    RawFile(path).remove("/layers/1/rope_inv_freq");
    io::write_float_attribute(RawFile(path).id(), "rope_attention_scaling", 1.2, path);
    REQUIRE_THROWS_WITH(check_forward_attention(DumpReader(path).info(), c, 12),
                        Contains("rope_attention_scaling 1.2"));
  }
}
