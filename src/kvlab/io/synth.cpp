#include "kvlab/io/synth.hpp"

#include "kvlab/core/progress.hpp"

#include <fmt/format.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <functional>
#include <future>

#include "kvlab/core/error.hpp"
#include "kvlab/core/rng.hpp"
#include "kvlab/io/dump_writer.hpp"

namespace kvlab {

namespace {

// Purpose tags of the random streams (Rng::for_block's fourth argument).
enum Purpose : std::uint64_t { kKeys = 1, kValues = 2, kQueries = 3, kLayer = 4, kTokens = 5 };

struct Preset {
  const char* name;
  int layers, heads, kv_heads, head_dim, tokens, prompt;
  double theta;
};
constexpr Preset kPresets[] = {
    {"tiny", 2, 4, 2, 32, 256, 128, 10000.0},
    {"small", 4, 8, 2, 64, 1024, 384, 10000.0},
    {"llama2-7b", 32, 32, 32, 128, 4096, 2048, 10000.0},
    {"llama3-8b", 32, 32, 8, 128, 4096, 2048, 500000.0},
};

// Approximately standard normal: Irwin-Hall sum of four 16-bit uniforms from
// one 64-bit draw, rescaled to unit variance (support ±2√3). About 10× cheaper
// than Box-Muller, which matters for the 1.6e9 values of a 7B-shaped dump.
inline float fast_normal(Rng& rng) {
  const std::uint64_t u = rng.next_u64();
  const std::uint32_t sum = static_cast<std::uint32_t>(u & 0xFFFF) + static_cast<std::uint32_t>((u >> 16) & 0xFFFF) +
                            static_cast<std::uint32_t>((u >> 32) & 0xFFFF) + static_cast<std::uint32_t>(u >> 48);
  constexpr float kScale = 1.7320508075688772f / 65536.0f;  // √3 / 2^16
  return (static_cast<float>(sum) + 2.0f - 131072.0f) * kScale;
}

void fill_normal(Matrix& m, Rng& rng, float scale) {
  float* p = m.data();
  const Eigen::Index n = m.size();
  for (Eigen::Index i = 0; i < n; ++i) p[i] = scale * fast_normal(rng);
}

// cos/sin of pos · theta^(-2i/d) for pos in [first, first + rows), i < d/2.
struct RopeTable {
  int half = 0;
  std::vector<float> cos, sin;
  RopeTable(int rows, int d, double theta, int first = 0) : half(d / 2) {
    cos.resize(static_cast<std::size_t>(rows) * half);
    sin.resize(cos.size());
    std::vector<double> inv_freq(static_cast<std::size_t>(half));
    for (int i = 0; i < half; ++i) inv_freq[i] = std::pow(theta, -2.0 * i / d);
    for (int t = 0; t < rows; ++t)
      for (int i = 0; i < half; ++i) {
        const double angle = static_cast<double>(first + t) * inv_freq[i];
        cos[static_cast<std::size_t>(t) * half + i] = static_cast<float>(std::cos(angle));
        sin[static_cast<std::size_t>(t) * half + i] = static_cast<float>(std::sin(angle));
      }
  }
};

void rotate(Matrix& x, const RopeTable& table, RopeStyle style, bool inverse) {
  const int half = table.half;
  const float sign = inverse ? -1.0f : 1.0f;
  for (Eigen::Index t = 0; t < x.rows(); ++t) {
    float* row = x.data() + t * x.cols();
    const float* c = table.cos.data() + t * half;
    const float* s = table.sin.data() + t * half;
    for (int i = 0; i < half; ++i) {
      const int ia = style == RopeStyle::Gptj ? 2 * i : i;
      const int ib = style == RopeStyle::Gptj ? 2 * i + 1 : i + half;
      const float a = row[ia], b = row[ib], si = sign * s[i];
      row[ia] = a * c[i] - b * si;
      row[ib] = a * si + b * c[i];
    }
  }
}

// Everything shared by the blocks of one dump.
struct Context {
  SynthOptions o;
  int rank = 1;               // low-rank part's rank
  std::vector<float> sink_dir;  // unit vector on the lowest-frequency RoPE pairs
  std::unique_ptr<RopeTable> rope;
};

Context make_context(const SynthOptions& o) {
  Context ctx;
  ctx.o = o;
  const int d = o.head_dim;
  ctx.rank = std::max(1, d / 16);
  ctx.sink_dir.assign(static_cast<std::size_t>(d), 0.0f);
  const int half = d / 2;
  const int pairs = std::min(2, std::max(1, half));
  std::vector<int> channels;
  for (int i = half - pairs; i < half; ++i) {
    if (o.rope_style == RopeStyle::Gptj) {
      channels.push_back(2 * i);
      channels.push_back(2 * i + 1);
    } else {
      channels.push_back(i);
      channels.push_back(i + half);
    }
  }
  if (d == 1) channels = {0};
  for (int c : channels) ctx.sink_dir[static_cast<std::size_t>(c)] = 1.0f / std::sqrt(static_cast<float>(channels.size()));
  if (o.rope) ctx.rope = std::make_unique<RopeTable>(o.seq_len, d, o.rope_theta);
  return ctx;
}

std::vector<int> outlier_channels(const SynthOptions& o, int layer) {
  Rng rng = Rng::for_block(o.seed, layer, -1, kLayer);
  std::vector<int> all(static_cast<std::size_t>(o.head_dim));
  for (int i = 0; i < o.head_dim; ++i) all[i] = i;
  // Partial Fisher-Yates: the first outlier_channels entries.
  for (int i = 0; i < o.outlier_channels; ++i) std::swap(all[i], all[i + rng.below(o.head_dim - i)]);
  all.resize(static_cast<std::size_t>(o.outlier_channels));
  std::sort(all.begin(), all.end());
  return all;
}

float sink_logit(int t) { return std::log(static_cast<float>(t) + 1.0f) + 3.0f; }

void make_block(const Context& ctx, int layer, int g, const std::vector<int>& outliers, Matrix& K, Matrix& V,
                std::vector<Matrix>& queries) {
  const SynthOptions& o = ctx.o;
  const int T = o.seq_len, d = o.head_dim, r = ctx.rank;
  const float sqrt_d = std::sqrt(static_cast<float>(d));

  // Keys before RoPE: low-rank part + noise, unit energy per element.
  Rng krng = Rng::for_block(o.seed, layer, g, kKeys);
  Matrix B(r, d), U(T, r);
  fill_normal(B, krng, 1.0f);
  fill_normal(U, krng, 1.0f);
  const float low = std::sqrt(o.lowrank_share / static_cast<float>(r));
  const float noise = std::sqrt(1.0f - o.lowrank_share);
  K.resize(T, d);
  K.noalias() = U * B;
  {
    float* p = K.data();
    const Eigen::Index n = K.size();
    for (Eigen::Index i = 0; i < n; ++i) p[i] = low * p[i] + noise * fast_normal(krng);
  }
  for (int c : outliers) K.col(c) *= o.outlier_scale;
  if (o.sink) {
    for (int c = 0; c < d; ++c) K(0, c) = sqrt_d * ctx.sink_dir[static_cast<std::size_t>(c)];
  }
  if (ctx.rope) rotate(K, *ctx.rope, o.rope_style, false);

  // Values: Gaussian rows with a mild log-normal per-token scale.
  Rng vrng = Rng::for_block(o.seed, layer, g, kValues);
  V.resize(T, d);
  for (int t = 0; t < T; ++t) {
    const float scale = std::exp(0.25f * fast_normal(vrng));
    for (int c = 0; c < d; ++c) V(t, c) = scale * fast_normal(vrng);
  }

  if (!o.with_queries) return;
  std::vector<float> inv_norm2(static_cast<std::size_t>(T));
  for (int t = 0; t < T; ++t) inv_norm2[t] = 1.0f / std::max(K.row(t).squaredNorm(), 1e-12f);
  const int group = o.num_heads / o.num_kv_heads;
  for (int j = 0; j < group; ++j) {
    const int h = g * group + j;
    Rng qrng = Rng::for_block(o.seed, layer, h, kQueries);
    Matrix& Q = queries[static_cast<std::size_t>(h)];
    Q.resize(T, d);
    fill_normal(Q, qrng, 0.5f);
    // Sink: a shared pre-RoPE query component along the sink key's direction
    // (low-frequency channels, barely rotated), worth sink_logit(t) nats.
    if (o.sink)
      for (int t = 0; t < T; ++t) {
        const float strength = sink_logit(t);
        for (int c = 0; c < d; ++c) Q(t, c) += strength * ctx.sink_dir[static_cast<std::size_t>(c)];
      }
    if (ctx.rope) rotate(Q, *ctx.rope, o.rope_style, false);
    // Peaky attention, added after RoPE: each query t >= 1 gets two earlier
    // target keys (one among the last 32 positions, one anywhere in [1, t]),
    // each adding query_peakiness nats to the target's logit q·k/√d.
    if (o.query_peakiness > 0)
      for (int t = 1; t < T; ++t) {
        const int recent_lo = std::max(1, t - 31);
        const int targets[2] = {recent_lo + static_cast<int>(qrng.below(static_cast<std::uint64_t>(t - recent_lo + 1))),
                                1 + static_cast<int>(qrng.below(static_cast<std::uint64_t>(t)))};
        for (int target : targets)
          Q.row(t) += (o.query_peakiness * sqrt_d * inv_norm2[static_cast<std::size_t>(target)]) * K.row(target);
      }
  }
}

}  // namespace

std::vector<std::string> synth_preset_names() {
  std::vector<std::string> names;
  for (const Preset& p : kPresets) names.emplace_back(p.name);
  return names;
}

SynthOptions resolve_synth_options(const SynthOptions& options) {
  const Preset* preset = nullptr;
  for (const Preset& p : kPresets)
    if (options.preset == p.name) preset = &p;
  if (preset == nullptr)
    fail("synth: unknown preset '{}' (expected one of: {})", options.preset, fmt::join(synth_preset_names(), ", "));
  SynthOptions o = options;
  auto pick = [](int& field, int preset_value) {
    if (field == 0) field = preset_value;
  };
  pick(o.num_layers, preset->layers);
  pick(o.num_heads, preset->heads);
  pick(o.num_kv_heads, preset->kv_heads);
  pick(o.head_dim, preset->head_dim);
  pick(o.seq_len, preset->tokens);
  if (o.prompt_len == 0) o.prompt_len = std::min(preset->prompt, std::max(1, o.seq_len / 2));
  if (o.rope_theta == 0) o.rope_theta = preset->theta;
  if (o.outlier_channels < 0) o.outlier_channels = std::max(1, o.head_dim / 32);

  auto positive = [](const char* name, int value) {
    if (value <= 0) fail("synth: --{} must be a positive integer, found {}", name, value);
  };
  positive("layers", o.num_layers);
  positive("heads", o.num_heads);
  positive("kv-heads", o.num_kv_heads);
  positive("head-dim", o.head_dim);
  positive("tokens", o.seq_len);
  positive("prompt", o.prompt_len);
  if (o.num_heads % o.num_kv_heads != 0)
    fail("synth: --heads ({}) must be a multiple of --kv-heads ({})", o.num_heads, o.num_kv_heads);
  if (o.prompt_len > o.seq_len) fail("synth: --prompt ({}) exceeds --tokens ({})", o.prompt_len, o.seq_len);
  if (o.rope && o.head_dim % 2 != 0) fail("synth: --head-dim must be even with RoPE, found {}", o.head_dim);
  if (o.outlier_channels > o.head_dim)
    fail("synth: --outlier-channels ({}) exceeds --head-dim ({})", o.outlier_channels, o.head_dim);
  if (!(std::isfinite(o.outlier_scale) && o.outlier_scale > 0))
    fail("synth: --outlier-scale must be a positive number, found {}", o.outlier_scale);
  if (!(o.lowrank_share >= 0 && o.lowrank_share <= 1))
    fail("synth: --lowrank-share must be in [0, 1], found {}", o.lowrank_share);
  if (!(std::isfinite(o.query_peakiness) && o.query_peakiness >= 0))
    fail("synth: --peakiness must be >= 0, found {}", o.query_peakiness);
  if (!(std::isfinite(o.rope_theta) && o.rope_theta > 0))
    fail("synth: --rope-theta must be a positive number, found {}", o.rope_theta);
  if (o.rope && o.rope_style == RopeStyle::None) fail("synth: --rope-style must be neox or gptj");
  if (!(std::isfinite(o.attn_scale) && o.attn_scale >= 0))
    fail("synth: --attn-scale must be a positive number (0: 1/sqrt(head_dim)), found {}", o.attn_scale);
  if (!(std::isfinite(o.attn_logit_softcap) && o.attn_logit_softcap >= 0))
    fail("synth: --softcap must be a positive number (0: none), found {}", o.attn_logit_softcap);
  if (o.sliding_window < 0) fail("synth: --sliding-window must be >= 1 (0: none), found {}", o.sliding_window);
  if (!o.window_layers.empty() && o.sliding_window == 0)
    fail("synth: --window-layers needs --sliding-window");
  for (int layer : o.window_layers)
    if (layer < 0 || layer >= o.num_layers)
      fail("synth: --window-layers: layer {} is out of range (the dump has layers 0..{})", layer, o.num_layers - 1);
  return o;
}

DumpInfo synth_info(const SynthOptions& o) {
  DumpInfo info;
  info.num_layers = o.num_layers;
  info.num_heads = o.num_heads;
  info.num_kv_heads = o.num_kv_heads;
  info.head_dim = o.head_dim;
  info.seq_len = o.seq_len;
  info.prompt_len = o.prompt_len;
  info.model = fmt::format(
      "kvlab-synth preset={} seed={} outliers={}x{} lowrank_share={} sink={} peakiness={} rope={}", o.preset,
      o.seed, o.outlier_channels, o.outlier_scale, o.lowrank_share, o.sink ? "yes" : "no", o.query_peakiness,
      o.rope ? to_string(o.rope_style) : "none");
  if (o.rope) info.rope = RopeInfo{o.rope_theta, o.rope_style};
  if (o.attn_scale > 0) info.attn_scale = o.attn_scale;
  if (o.attn_logit_softcap > 0) info.attn_logit_softcap = o.attn_logit_softcap;
  if (o.sliding_window > 0) {
    info.layer_attention.assign(static_cast<std::size_t>(o.num_layers), {});
    for (int layer = 0; layer < o.num_layers; ++layer)
      if (o.window_layers.empty() || std::find(o.window_layers.begin(), o.window_layers.end(), layer) != o.window_layers.end())
        info.layer_attention[static_cast<std::size_t>(layer)].sliding_window = o.sliding_window;
  }
  info.has_queries = o.with_queries;
  info.has_tokens = true;
  info.dtype = o.float16 ? "float16" : "float32";
  return info;
}

LayerData synth_layer(const SynthOptions& resolved, int layer, int threads) {
  const Context ctx = make_context(resolved);
  const std::vector<int> outliers = outlier_channels(resolved, layer);
  LayerData data;
  data.layer = layer;
  data.keys.resize(static_cast<std::size_t>(resolved.num_kv_heads));
  data.values.resize(data.keys.size());
  if (resolved.with_queries) data.queries.resize(static_cast<std::size_t>(resolved.num_heads));
  const int blocks = resolved.num_kv_heads;
  const int nthreads = threads > 0 ? threads : omp_get_max_threads();
#pragma omp parallel for schedule(dynamic, 1) num_threads(nthreads)
  for (int g = 0; g < blocks; ++g)
    make_block(ctx, layer, g, outliers, data.keys[static_cast<std::size_t>(g)],
               data.values[static_cast<std::size_t>(g)], data.queries);
  return data;
}

std::vector<std::int64_t> synth_tokens(const SynthOptions& resolved) {
  Rng rng = Rng::for_block(resolved.seed, -1, -1, kTokens);
  std::vector<std::int64_t> tokens(static_cast<std::size_t>(resolved.seq_len));
  for (auto& t : tokens) t = static_cast<std::int64_t>(rng.below(32000));
  return tokens;
}

SynthResult write_synth_dump(const std::string& path, const SynthOptions& options, int threads, Progress* progress) {
  const auto start = std::chrono::steady_clock::now();
  const SynthOptions o = resolve_synth_options(options);
  SynthResult result;
  result.info = synth_info(o);
  result.info.path = path;
  {
    DumpWriter writer(path, result.info, DumpWriteOptions{o.float16});
    // Generate layer L+1 (OpenMP, off this thread) while this thread writes
    // layer L through HDF5; at most two layers are in memory at once.
    std::future<LayerData> next = std::async(std::launch::async, synth_layer, std::cref(o), 0, threads);
    for (int layer = 0; layer < o.num_layers; ++layer) {
      LayerData current = next.get();
      if (layer + 1 < o.num_layers) next = std::async(std::launch::async, synth_layer, std::cref(o), layer + 1, threads);
      writer.write_layer(current);
      if (progress) progress->advance();
    }
    writer.write_tokens(synth_tokens(o));
    writer.close();
  }
  std::error_code ec;
  result.bytes = std::filesystem::file_size(path, ec);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

void apply_rope(Matrix& x, double theta, RopeStyle style, int first_position, bool inverse) {
  if (style == RopeStyle::None) return;
  KVLAB_ASSERT(x.cols() % 2 == 0);
  const RopeTable table(static_cast<int>(x.rows()), static_cast<int>(x.cols()), theta, first_position);
  rotate(x, table, style, inverse);
}

}  // namespace kvlab
