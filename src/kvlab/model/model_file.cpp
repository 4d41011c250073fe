#include "kvlab/model/model_file.hpp"

#include <fmt/format.h>
#include <hdf5.h>

#include <climits>
#include <cmath>

#include "kvlab/core/error.hpp"
#include "kvlab/core/fp16.hpp"
#include "kvlab/core/rng.hpp"
#include "kvlab/io/hdf5_checked.hpp"
#include "kvlab/io/hdf5_errors.hpp"
#include "kvlab/io/hdf5_handle.hpp"

namespace kvlab {

using namespace kvlab::io;

std::uint64_t ModelConfig::parameter_count() const {
  const std::uint64_t h = static_cast<std::uint64_t>(hidden_size);
  const std::uint64_t per_layer = 2 * h + h * static_cast<std::uint64_t>(q_dim()) * 2 +
                                  h * static_cast<std::uint64_t>(kv_dim()) * 2 +
                                  3 * h * static_cast<std::uint64_t>(intermediate_size);
  const std::uint64_t embed = static_cast<std::uint64_t>(vocab_size) * h;
  return per_layer * static_cast<std::uint64_t>(num_layers) + embed + h + (tie_word_embeddings ? 0 : embed);
}

void validate_config(const ModelConfig& c, const std::string& where) {
  auto positive = [&](const char* name, int v) {
    if (v <= 0) fail("{}: root attribute '{}': expected a positive integer, found {}", where, name, v);
  };
  positive("num_layers", c.num_layers);
  positive("hidden_size", c.hidden_size);
  positive("num_heads", c.num_heads);
  positive("num_kv_heads", c.num_kv_heads);
  positive("head_dim", c.head_dim);
  positive("intermediate_size", c.intermediate_size);
  positive("vocab_size", c.vocab_size);
  if (c.num_heads % c.num_kv_heads != 0)
    fail("{}: root attributes: num_heads ({}) must be a multiple of num_kv_heads ({})", where, c.num_heads,
         c.num_kv_heads);
  if (c.head_dim % 2 != 0) fail("{}: root attribute 'head_dim': expected an even number (RoPE pairs), found {}", where, c.head_dim);
  if (!(std::isfinite(c.rope_theta) && c.rope_theta > 0))
    fail("{}: root attribute 'rope_theta': expected a positive number, found {}", where, c.rope_theta);
  if (c.rope_style != RopeStyle::Neox && c.rope_style != RopeStyle::Gptj)
    fail("{}: root attribute 'rope_style': expected \"neox\" or \"gptj\", found \"{}\"", where, to_string(c.rope_style));
  if (!(std::isfinite(c.rms_norm_eps) && c.rms_norm_eps > 0))
    fail("{}: root attribute 'rms_norm_eps': expected a positive number, found {}", where, c.rms_norm_eps);
}

namespace {

class ModelFile {
 public:
  explicit ModelFile(const std::string& path) : file_(path, "kvlab-model") {}

  [[noreturn]] void bad(const std::string& what) const { file_.bad(what); }

  int required_int(const char* name) const {
    const auto v = read_int_attribute(file_.get(), name, file_.path(), "/");
    if (!v) bad(fmt::format("missing root attribute '{}' (required integer)", name));
    if (*v <= 0 || *v > INT_MAX) bad(fmt::format("root attribute '{}': expected a positive integer, found {}", name, *v));
    return static_cast<int>(*v);
  }
  double required_float(const char* name) const {
    const auto v = read_float_attribute(file_.get(), name, file_.path(), "/");
    if (!v) bad(fmt::format("missing root attribute '{}' (required number)", name));
    return *v;
  }
  std::string required_string(const char* name, const char* expected) const {
    const auto v = read_string_attribute(file_.get(), name, file_.path(), "/");
    if (!v) bad(fmt::format("missing root attribute '{}' (expected {})", name, expected));
    return *v;
  }

  ModelConfig read_config() const {
    const std::string format = required_string("format", "\"kvlab-model\"");
    if (format != "kvlab-model")
      bad(fmt::format("root attribute 'format': expected \"kvlab-model\", found \"{}\"", format));
    const auto version = read_int_attribute(file_.get(), "version", file_.path(), "/");
    if (!version) bad("missing root attribute 'version' (expected 1)");
    if (*version != 1)
      bad(fmt::format("root attribute 'version': expected 1, found {} (this kvlab reads kvlab-model version 1)",
                      *version));
    ModelConfig c;
    c.architecture = required_string("architecture", "\"llama\"");
    if (c.architecture != "llama")
      bad(fmt::format("root attribute 'architecture': expected \"llama\", found \"{}\"", c.architecture));
    c.num_layers = required_int("num_layers");
    c.hidden_size = required_int("hidden_size");
    c.num_heads = required_int("num_heads");
    c.num_kv_heads = required_int("num_kv_heads");
    c.head_dim = required_int("head_dim");
    c.intermediate_size = required_int("intermediate_size");
    c.vocab_size = required_int("vocab_size");
    c.rope_theta = required_float("rope_theta");
    const std::string style = required_string("rope_style", "\"neox\" or \"gptj\"");
    if (style != "neox" && style != "gptj")
      bad(fmt::format("root attribute 'rope_style': expected \"neox\" or \"gptj\", found \"{}\"", style));
    c.rope_style = parse_rope_style(style);
    c.rms_norm_eps = required_float("rms_norm_eps");
    const auto tie = read_int_attribute(file_.get(), "tie_word_embeddings", file_.path(), "/");
    if (!tie) bad("missing root attribute 'tie_word_embeddings' (expected 0 or 1)");
    if (*tie != 0 && *tie != 1) bad(fmt::format("root attribute 'tie_word_embeddings': expected 0 or 1, found {}", *tie));
    c.tie_word_embeddings = *tie == 1;
    c.model = read_string_attribute(file_.get(), "model", file_.path(), "/").value_or("");
    validate_config(c, file_.path());
    return c;
  }

  bool exists(const std::string& path) const { return file_.exists(path); }

  // Checks shape and float element type of `path` (dims_meaning names the
  // dimensions in messages).
  void check(const std::string& path, const std::vector<hsize_t>& expected, const std::string& meaning) const {
    file_.check_float_tensor(path, expected, meaning);
  }

  // Reads a checked dataset of `count` elements into `dst` (float32) and
  // checks finiteness.
  void read(const std::string& path, float* dst, std::size_t count, std::size_t cols) const {
    FloatReader(file_, path).read_all(dst, count, "weight", [cols](std::size_t i) {
      return cols > 1 ? fmt::format("[{}, {}]", i / cols, i % cols) : fmt::format("[{}]", i);
    });
  }

  Matrix read_matrix(const std::string& path, int rows, int cols) const {
    Matrix m(rows, cols);
    read(path, m.data(), static_cast<std::size_t>(rows) * cols, static_cast<std::size_t>(cols));
    return m;
  }
  Vector read_vector(const std::string& path, int n) const {
    Vector v(n);
    read(path, v.data(), static_cast<std::size_t>(n), 1);
    return v;
  }

  const std::string& path() const { return file_.path(); }
  const CheckedFile& checked() const { return file_; }

 private:
  CheckedFile file_;
};

struct TensorSpec {
  std::string path;
  std::vector<hsize_t> shape;
  std::string meaning;
};

std::vector<TensorSpec> layer_tensors(const ModelConfig& c, int layer) {
  const auto h = static_cast<hsize_t>(c.hidden_size), q = static_cast<hsize_t>(c.q_dim()),
             kv = static_cast<hsize_t>(c.kv_dim()), f = static_cast<hsize_t>(c.intermediate_size);
  return {{layer_path(layer, "input_layernorm"), {h}, "[hidden_size]"},
          {layer_path(layer, "q_proj"), {q, h}, "[num_heads·head_dim, hidden_size]"},
          {layer_path(layer, "k_proj"), {kv, h}, "[num_kv_heads·head_dim, hidden_size]"},
          {layer_path(layer, "v_proj"), {kv, h}, "[num_kv_heads·head_dim, hidden_size]"},
          {layer_path(layer, "o_proj"), {h, q}, "[hidden_size, num_heads·head_dim]"},
          {layer_path(layer, "post_attention_layernorm"), {h}, "[hidden_size]"},
          {layer_path(layer, "gate_proj"), {f, h}, "[intermediate_size, hidden_size]"},
          {layer_path(layer, "up_proj"), {f, h}, "[intermediate_size, hidden_size]"},
          {layer_path(layer, "down_proj"), {h, f}, "[hidden_size, intermediate_size]"}};
}

}  // namespace

ModelConfig read_model_config(const std::string& path) { return ModelFile(path).read_config(); }

ModelWeights load_model(const std::string& path) {
  const ModelFile file(path);
  ModelWeights w;
  w.path = path;
  w.config = file.read_config();
  const ModelConfig& c = w.config;
  const auto h = static_cast<hsize_t>(c.hidden_size), vocab = static_cast<hsize_t>(c.vocab_size);

  // Structure first (cheap), then the data.
  file.check("/embed_tokens", {vocab, h}, "[vocab_size, hidden_size]");
  file.check("/norm", {h}, "[hidden_size]");
  if (!c.tie_word_embeddings) {
    if (!file.exists("/lm_head"))
      file.bad("missing dataset /lm_head (required when tie_word_embeddings = 0)");
    file.check("/lm_head", {vocab, h}, "[vocab_size, hidden_size]");
  }
  if (!file.exists("/layers")) file.bad("missing group /layers");
  const char* bias_names[3] = {"q_proj_bias", "k_proj_bias", "v_proj_bias"};
  const hsize_t bias_dims[3] = {static_cast<hsize_t>(c.q_dim()), static_cast<hsize_t>(c.kv_dim()),
                                static_cast<hsize_t>(c.kv_dim())};
  for (int l = 0; l < c.num_layers; ++l) {
    for (const TensorSpec& t : layer_tensors(c, l)) file.check(t.path, t.shape, t.meaning);
    for (int b = 0; b < 3; ++b)
      if (file.exists(layer_path(l, bias_names[b])))
        file.check(layer_path(l, bias_names[b]), {bias_dims[b]}, "[output features]");
  }

  w.vocab = read_vocabulary(file.checked(), c.vocab_size);
  w.embed_tokens = file.read_matrix("/embed_tokens", c.vocab_size, c.hidden_size);
  w.norm = file.read_vector("/norm", c.hidden_size);
  if (!c.tie_word_embeddings) w.lm_head = file.read_matrix("/lm_head", c.vocab_size, c.hidden_size);
  w.layers.resize(static_cast<std::size_t>(c.num_layers));
  for (int l = 0; l < c.num_layers; ++l) {
    LayerWeights& L = w.layers[static_cast<std::size_t>(l)];
    L.input_norm = file.read_vector(layer_path(l, "input_layernorm"), c.hidden_size);
    L.q_proj = file.read_matrix(layer_path(l, "q_proj"), c.q_dim(), c.hidden_size);
    L.k_proj = file.read_matrix(layer_path(l, "k_proj"), c.kv_dim(), c.hidden_size);
    L.v_proj = file.read_matrix(layer_path(l, "v_proj"), c.kv_dim(), c.hidden_size);
    L.o_proj = file.read_matrix(layer_path(l, "o_proj"), c.hidden_size, c.q_dim());
    L.post_norm = file.read_vector(layer_path(l, "post_attention_layernorm"), c.hidden_size);
    L.gate_proj = file.read_matrix(layer_path(l, "gate_proj"), c.intermediate_size, c.hidden_size);
    L.up_proj = file.read_matrix(layer_path(l, "up_proj"), c.intermediate_size, c.hidden_size);
    L.down_proj = file.read_matrix(layer_path(l, "down_proj"), c.hidden_size, c.intermediate_size);
    Vector* biases[3] = {&L.q_bias, &L.k_bias, &L.v_bias};
    for (int b = 0; b < 3; ++b)
      if (file.exists(layer_path(l, bias_names[b])))
        *biases[b] = file.read_vector(layer_path(l, bias_names[b]), static_cast<int>(bias_dims[b]));
  }
  return w;
}

ModelWeights random_model(const ModelConfig& config, std::uint64_t seed, bool with_bias) {
  validate_config(config, "random_model");
  ModelWeights w;
  w.config = config;
  const ModelConfig& c = config;
  Rng rng(seed);
  // Uniform in [-a, a] with a = √3/√fan_in: unit-variance outputs for unit inputs.
  auto fill = [&](Matrix& m, int rows, int cols, double gain = 1.0) {
    m.resize(rows, cols);
    const double a = gain * std::sqrt(3.0 / cols);
    float* p = m.data();
    for (Eigen::Index i = 0; i < m.size(); ++i) p[i] = static_cast<float>((2.0 * rng.uniform() - 1.0) * a);
  };
  auto fill_norm = [&](Vector& v, int n) {
    v.resize(n);
    for (int i = 0; i < n; ++i) v[i] = static_cast<float>(0.8 + 0.4 * rng.uniform());
  };
  auto fill_bias = [&](Vector& v, int n) {
    v.resize(n);
    for (int i = 0; i < n; ++i) v[i] = static_cast<float>(0.2 * (2.0 * rng.uniform() - 1.0));
  };
  fill(w.embed_tokens, c.vocab_size, c.hidden_size, std::sqrt(static_cast<double>(c.hidden_size)));
  w.layers.resize(static_cast<std::size_t>(c.num_layers));
  for (LayerWeights& L : w.layers) {
    fill_norm(L.input_norm, c.hidden_size);
    // Larger q/k gain so attention is far from uniform.
    fill(L.q_proj, c.q_dim(), c.hidden_size, 2.0);
    fill(L.k_proj, c.kv_dim(), c.hidden_size, 2.0);
    fill(L.v_proj, c.kv_dim(), c.hidden_size);
    fill(L.o_proj, c.hidden_size, c.q_dim(), 0.5);
    fill_norm(L.post_norm, c.hidden_size);
    fill(L.gate_proj, c.intermediate_size, c.hidden_size);
    fill(L.up_proj, c.intermediate_size, c.hidden_size);
    fill(L.down_proj, c.hidden_size, c.intermediate_size, 0.5);
    if (with_bias) {
      fill_bias(L.q_bias, c.q_dim());
      fill_bias(L.k_bias, c.kv_dim());
      fill_bias(L.v_bias, c.kv_dim());
    }
  }
  fill_norm(w.norm, c.hidden_size);
  if (!c.tie_word_embeddings) fill(w.lm_head, c.vocab_size, c.hidden_size, 2.0);
  return w;
}

namespace {

void write_dataset(hid_t file, const std::string& path, const float* data, const std::vector<hsize_t>& shape,
                   bool fp16, const std::string& file_name) {
  DataspaceHandle space(H5Screate_simple(static_cast<int>(shape.size()), shape.data(), nullptr));
  PropListHandle lcpl(H5Pcreate(H5P_LINK_CREATE));
  H5Pset_create_intermediate_group(lcpl.get(), 1);
  std::size_t count = 1;
  for (hsize_t d : shape) count *= d;
  herr_t status;
  if (fp16) {
    DatatypeHandle half = make_float16_type();
    DatasetHandle ds(H5Dcreate2(file, path.c_str(), half.get(), space.get(), lcpl.get(), H5P_DEFAULT, H5P_DEFAULT));
    if (!ds) fail("{}: cannot create dataset {} ({})", file_name, path, last_hdf5_error());
    std::vector<std::uint16_t> bits(count);
    for (std::size_t i = 0; i < count; ++i) bits[i] = float_to_half_bits(data[i]);
    status = H5Dwrite(ds.get(), half.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, bits.data());
  } else {
    DatasetHandle ds(
        H5Dcreate2(file, path.c_str(), H5T_IEEE_F32LE, space.get(), lcpl.get(), H5P_DEFAULT, H5P_DEFAULT));
    if (!ds) fail("{}: cannot create dataset {} ({})", file_name, path, last_hdf5_error());
    status = H5Dwrite(ds.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
  }
  if (status < 0) fail("{}: cannot write dataset {} ({})", file_name, path, last_hdf5_error());
}

}  // namespace

void write_model(const ModelWeights& w, const std::string& path, bool fp16) {
  silence_hdf5_errors();
  const ModelConfig& c = w.config;
  FileHandle file(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
  if (!file) fail("{}: cannot create file ({})", path, last_hdf5_error());
  const hid_t f = file.get();
  write_string_attribute(f, "format", "kvlab-model", path);
  write_int_attribute(f, "version", 1, path);
  write_string_attribute(f, "architecture", c.architecture, path);
  write_int_attribute(f, "num_layers", c.num_layers, path);
  write_int_attribute(f, "hidden_size", c.hidden_size, path);
  write_int_attribute(f, "num_heads", c.num_heads, path);
  write_int_attribute(f, "num_kv_heads", c.num_kv_heads, path);
  write_int_attribute(f, "head_dim", c.head_dim, path);
  write_int_attribute(f, "intermediate_size", c.intermediate_size, path);
  write_int_attribute(f, "vocab_size", c.vocab_size, path);
  write_float_attribute(f, "rope_theta", c.rope_theta, path);
  write_string_attribute(f, "rope_style", to_string(c.rope_style), path);
  write_float_attribute(f, "rms_norm_eps", c.rms_norm_eps, path);
  write_int_attribute(f, "tie_word_embeddings", c.tie_word_embeddings ? 1 : 0, path);
  write_string_attribute(f, "model", c.model, path);
  write_vocabulary(f, w.vocab, path);
  auto mat = [&](const std::string& p, const Matrix& m) {
    write_dataset(f, p, m.data(), {static_cast<hsize_t>(m.rows()), static_cast<hsize_t>(m.cols())}, fp16, path);
  };
  auto vec = [&](const std::string& p, const Vector& v) {
    write_dataset(f, p, v.data(), {static_cast<hsize_t>(v.size())}, fp16, path);
  };
  mat("/embed_tokens", w.embed_tokens);
  for (int l = 0; l < c.num_layers; ++l) {
    const LayerWeights& L = w.layers[static_cast<std::size_t>(l)];
    vec(layer_path(l, "input_layernorm"), L.input_norm);
    mat(layer_path(l, "q_proj"), L.q_proj);
    mat(layer_path(l, "k_proj"), L.k_proj);
    mat(layer_path(l, "v_proj"), L.v_proj);
    mat(layer_path(l, "o_proj"), L.o_proj);
    vec(layer_path(l, "post_attention_layernorm"), L.post_norm);
    mat(layer_path(l, "gate_proj"), L.gate_proj);
    mat(layer_path(l, "up_proj"), L.up_proj);
    mat(layer_path(l, "down_proj"), L.down_proj);
    if (L.q_bias.size()) vec(layer_path(l, "q_proj_bias"), L.q_bias);
    if (L.k_bias.size()) vec(layer_path(l, "k_proj_bias"), L.k_bias);
    if (L.v_bias.size()) vec(layer_path(l, "v_proj_bias"), L.v_bias);
  }
  vec("/norm", w.norm);
  if (!c.tie_word_embeddings) mat("/lm_head", w.lm_head);
}

}  // namespace kvlab
