#include "kvlab/model/llama_forward.hpp"

#include <algorithm>
#include <cmath>
#include <exception>

#include "kvlab/compressors/layer_state.hpp"
#include "kvlab/core/error.hpp"
#include "kvlab/attention/softmax.hpp"
#include "kvlab/metrics/attention.hpp"

namespace kvlab {

namespace {

constexpr int kRowChunk = 64;  // fixed: results must not depend on the thread count
// Below this many multiply-adds a parallel region costs more than it saves
// (and on a busy machine far more); the split itself never changes results.
constexpr double kParallelWork = 1 << 18;

int threads_for(double work, int threads) { return work >= kParallelWork ? threads : 1; }

void rms_norm(const float* x, const Vector& w, double eps, float* out) {
  const int n = static_cast<int>(w.size());
  float sum = 0.0f;  // float32, as transformers computes the variance
  for (int i = 0; i < n; ++i) sum += x[i] * x[i];
  const float scale = 1.0f / std::sqrt(sum / static_cast<float>(n) + static_cast<float>(eps));
  for (int i = 0; i < n; ++i) out[i] = w[i] * (x[i] * scale);
}

float silu(float x) { return x / (1.0f + std::exp(-x)); }

void add_bias(float* y, const Vector& b) {
  for (Eigen::Index i = 0; i < b.size(); ++i) y[i] += b[i];
}

}  // namespace

void matvec(const Matrix& w, const float* x, float* y, int threads) {
  const int rows = static_cast<int>(w.rows()), cols = static_cast<int>(w.cols());
  const int chunks = (rows + kRowChunk - 1) / kRowChunk;
  Eigen::Map<const Eigen::VectorXf> xv(x, cols);
  threads = threads_for(static_cast<double>(rows) * cols, threads);
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1 && chunks > 1)
  for (int c = 0; c < chunks; ++c) {
    const int r0 = c * kRowChunk, n = std::min(kRowChunk, rows - r0);
    Eigen::Map<Eigen::VectorXf> yv(y + r0, n);
    yv.noalias() = w.middleRows(r0, n) * xv;
  }
}

void matmul_transposed(const Matrix& x, const Matrix& w, Matrix& y, int threads) {
  const int rows = static_cast<int>(w.rows());
  y.resize(x.rows(), rows);
  constexpr int chunk = 4 * kRowChunk;
  const int chunks = (rows + chunk - 1) / chunk;
  threads = threads_for(static_cast<double>(x.rows()) * rows * static_cast<double>(w.cols()), threads);
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1 && chunks > 1)
  for (int c = 0; c < chunks; ++c) {
    const int r0 = c * chunk, n = std::min(chunk, rows - r0);
    y.middleCols(r0, n).noalias() = x * w.middleRows(r0, n).transpose();
  }
}

struct LlamaForward::Scratch {
  RowVector h, xn, q, k, v, attn_flat, o, gate, up;
  std::vector<Matrix> group_q, group_logits;  // per kv head: [g × d], [g × t]
  std::vector<std::vector<double>> probs;     // per kv head
};

LlamaForward::LlamaForward(const ModelWeights& weights, const Compressor& compressor, const ForwardOptions& options)
    : w_(weights), compressor_(compressor), opt_(options), scratch_(std::make_unique<Scratch>()) {
  const ModelConfig& c = w_.config;
  validate_config(c, w_.path.empty() ? "model" : w_.path);
  if (opt_.threads < 1) opt_.threads = 1;
  const int half = c.head_dim / 2;
  inv_freq_.resize(static_cast<std::size_t>(half));
  for (int i = 0; i < half; ++i) {
    // transformers: 1.0 / (base ** (arange(0, dim, 2).float() / dim)), all float32.
    const float e = static_cast<float>(2 * i) / static_cast<float>(c.head_dim);
    const float p = static_cast<float>(std::pow(static_cast<double>(static_cast<float>(c.rope_theta)),
                                                static_cast<double>(e)));
    inv_freq_[static_cast<std::size_t>(i)] = 1.0f / p;
  }
  attn_.assign(static_cast<std::size_t>(c.num_layers), Matrix::Zero(c.num_heads, c.head_dim));
  Scratch& s = *scratch_;
  s.group_q.assign(static_cast<std::size_t>(c.num_kv_heads), Matrix(c.group_size(), c.head_dim));
  s.group_logits.resize(static_cast<std::size_t>(c.num_kv_heads));
  s.probs.resize(static_cast<std::size_t>(c.num_kv_heads));
}

namespace {

// Query heads [j·g, (j+1)·g) of a layer: kv head j's group.
QueryGroup group_queries(const std::vector<Matrix>& qh, int j, int g) {
  QueryGroup group;
  for (int hq = j * g; hq < (j + 1) * g; ++hq) group.emplace_back(qh[static_cast<std::size_t>(hq)]);
  return group;
}

// First kv head of unit u: units are single heads, or one unit for all.
int per_unit_first_head(int u, int num_units) { return num_units == 1 ? 0 : u; }

}  // namespace

LlamaForward::~LlamaForward() = default;

const CacheReader& LlamaForward::state(int layer, int kv_head) const {
  KVLAB_ASSERT(!heads_.empty());
  return *heads_[static_cast<std::size_t>(layer * w_.config.num_kv_heads + kv_head)];
}

BitCount LlamaForward::bits() const {
  BitCount b;
  for (const CacheReader* h : heads_) b += h->bits();
  return b;
}

void LlamaForward::check_token(std::int64_t token) const {
  if (token < 0 || token >= w_.config.vocab_size)
    fail("token id {} out of range (the model's vocabulary has ids 0..{})", token, w_.config.vocab_size - 1);
}

void LlamaForward::apply_rope(float* x, int heads, int position) const {
  const int d = w_.config.head_dim, half = d / 2;
  const bool neox = w_.config.rope_style == RopeStyle::Neox;
  for (int i = 0; i < half; ++i) {
    const float angle = static_cast<float>(position) * inv_freq_[static_cast<std::size_t>(i)];
    const float cs = static_cast<float>(std::cos(static_cast<double>(angle)));
    const float sn = static_cast<float>(std::sin(static_cast<double>(angle)));
    for (int h = 0; h < heads; ++h) {
      float* v = x + static_cast<std::size_t>(h) * d;
      const int a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
      const float x1 = v[a], x2 = v[b];
      v[a] = x1 * cs - x2 * sn;
      v[b] = x2 * cs + x1 * sn;
    }
  }
}

void LlamaForward::finish(const RowVector& h) {
  const ModelConfig& c = w_.config;
  hidden_.resize(c.hidden_size);
  rms_norm(h.data(), w_.norm, c.rms_norm_eps, hidden_.data());
  logits_.resize(c.vocab_size);
  matvec(w_.output_matrix(), hidden_.data(), logits_.data(), opt_.threads);
}

void LlamaForward::prefill(std::span<const std::int64_t> tokens, Matrix* all_logits, Matrix* all_hidden) {
  if (!units_.empty()) fail("LlamaForward::prefill: the prompt was already given");
  if (tokens.empty()) fail("LlamaForward::prefill: the prompt needs at least one token");
  for (std::int64_t t : tokens) check_token(t);
  const ModelConfig& c = w_.config;
  const int P = static_cast<int>(tokens.size()), d = c.head_dim, H = c.num_heads, Hkv = c.num_kv_heads,
            g = c.group_size(), threads = opt_.threads;
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));

  Matrix h(P, c.hidden_size), xn(P, c.hidden_size), q, k, v, attn(P, H * d), o, gate, up;
  for (int i = 0; i < P; ++i) h.row(i) = w_.embed_tokens.row(tokens[static_cast<std::size_t>(i)]);

  units_.resize(static_cast<std::size_t>(c.num_layers));
  const bool per_head = compressor_.scope() == Compressor::Scope::Block;
  for (int layer = 0; layer < c.num_layers; ++layer) {
    const LayerWeights& L = w_.layers[static_cast<std::size_t>(layer)];
    for (int i = 0; i < P; ++i) rms_norm(h.row(i).data(), L.input_norm, c.rms_norm_eps, xn.row(i).data());
    matmul_transposed(xn, L.q_proj, q, threads);
    matmul_transposed(xn, L.k_proj, k, threads);
    matmul_transposed(xn, L.v_proj, v, threads);
    for (int i = 0; i < P; ++i) {
      if (L.q_bias.size()) add_bias(q.row(i).data(), L.q_bias);
      if (L.k_bias.size()) add_bias(k.row(i).data(), L.k_bias);
      if (L.v_bias.size()) add_bias(v.row(i).data(), L.v_bias);
      apply_rope(q.row(i).data(), H, i);
      apply_rope(k.row(i).data(), Hkv, i);
    }
    // Per-head [P × d] matrices: what the states and the calibration receive.
    std::vector<Matrix> kh(static_cast<std::size_t>(Hkv)), vh(static_cast<std::size_t>(Hkv)),
        qh(static_cast<std::size_t>(H));
    for (int j = 0; j < Hkv; ++j) {
      kh[static_cast<std::size_t>(j)] = k.middleCols(j * d, d);
      vh[static_cast<std::size_t>(j)] = v.middleCols(j * d, d);
    }
    for (int j = 0; j < H; ++j) qh[static_cast<std::size_t>(j)] = q.middleCols(j * d, d);

    BlockContext ctx;
    ctx.layer = layer;
    ctx.num_layers = c.num_layers;
    ctx.num_kv_heads = Hkv;
    ctx.head_dim = d;
    ctx.group_size = g;
    ctx.prompt_len = P;
    ctx.max_tokens = std::max(opt_.max_tokens, P);
    ctx.seed = opt_.seed;
    ctx.rope = RopeInfo{c.rope_theta, c.rope_style};
    ctx.calibration = compressor_.calibrate(LayerView{kh, vh, qh}, ctx);
    auto& units = units_[static_cast<std::size_t>(layer)];
    if (per_head)
      for (int j = 0; j < Hkv; ++j) units.push_back(make_layer_state(compressor_, ctx, j, 1));
    else
      units.push_back(make_layer_state(compressor_, ctx, 0, Hkv));
    for (const auto& unit : units)
      for (int j = 0; j < unit->heads(); ++j) heads_.push_back(&unit->head(j));

    std::vector<std::exception_ptr> errors(static_cast<std::size_t>(Hkv));
    const int attn_threads = threads_for(static_cast<double>(P) * P * d * H, threads);
#pragma omp parallel for schedule(static) num_threads(attn_threads) if (attn_threads > 1 && Hkv > 1)
    for (int j = 0; j < Hkv; ++j) {
      try {
        // Exact causal attention of the prompt over its own K/V.
        const Matrix& K = kh[static_cast<std::size_t>(j)];
        const Matrix& V = vh[static_cast<std::size_t>(j)];
        std::vector<double> p;
        Matrix scores, probs = Matrix::Zero(P, P);
        for (int hq = j * g; hq < (j + 1) * g; ++hq) {
          scores.noalias() = qh[static_cast<std::size_t>(hq)] * K.transpose();
          for (int i = 0; i < P; ++i) {
            softmax(scores.row(i).data(), i + 1, scale, nullptr, p);
            for (int t = 0; t <= i; ++t) probs(i, t) = static_cast<float>(p[static_cast<std::size_t>(t)]);
          }
          attn.middleCols(hq * d, d).noalias() = probs * V;
        }
        if (per_head) {
          const std::vector<ConstMatrixRef> keys{kh[static_cast<std::size_t>(j)]};
          const std::vector<ConstMatrixRef> values{vh[static_cast<std::size_t>(j)]};
          const std::vector<QueryGroup> queries{group_queries(qh, j, g)};
          units_[static_cast<std::size_t>(layer)][static_cast<std::size_t>(j)]->prefill(keys, values, queries);
        }
      } catch (...) {
        errors[static_cast<std::size_t>(j)] = std::current_exception();
      }
    }
    for (const auto& e : errors)
      if (e) std::rethrow_exception(e);
    if (!per_head) {  // the layer's one state takes every head at once
      std::vector<ConstMatrixRef> keys, values;
      std::vector<QueryGroup> queries;
      for (int j = 0; j < Hkv; ++j) {
        keys.emplace_back(kh[static_cast<std::size_t>(j)]);
        values.emplace_back(vh[static_cast<std::size_t>(j)]);
        queries.push_back(group_queries(qh, j, g));
      }
      units_[static_cast<std::size_t>(layer)].front()->prefill(keys, values, queries);
    }
    for (int hq = 0; hq < H; ++hq)
      attn_[static_cast<std::size_t>(layer)].row(hq) = attn.row(P - 1).segment(hq * d, d);

    matmul_transposed(attn, L.o_proj, o, threads);
    h += o;
    for (int i = 0; i < P; ++i) rms_norm(h.row(i).data(), L.post_norm, c.rms_norm_eps, xn.row(i).data());
    matmul_transposed(xn, L.gate_proj, gate, threads);
    matmul_transposed(xn, L.up_proj, up, threads);
    gate = gate.unaryExpr([](float x) { return silu(x); }).cwiseProduct(up);
    matmul_transposed(gate, L.down_proj, o, threads);
    h += o;
  }
  position_ = P;

  if (all_logits || all_hidden) {
    Matrix hn(P, c.hidden_size);
    for (int i = 0; i < P; ++i) rms_norm(h.row(i).data(), w_.norm, c.rms_norm_eps, hn.row(i).data());
    if (all_logits) matmul_transposed(hn, w_.output_matrix(), *all_logits, threads);
    if (all_hidden) *all_hidden = hn;
  }
  const RowVector last = h.row(P - 1);
  finish(last);
}

void LlamaForward::step(std::int64_t token) {
  if (units_.empty()) fail("LlamaForward::step: prefill() must come first");
  check_token(token);
  const ModelConfig& c = w_.config;
  const int d = c.head_dim, H = c.num_heads, Hkv = c.num_kv_heads, g = c.group_size(), threads = opt_.threads;
  const int t = position_;
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  Scratch& s = *scratch_;
  s.h = w_.embed_tokens.row(token);
  s.xn.resize(c.hidden_size);
  s.q.resize(H * d);
  s.k.resize(Hkv * d);
  s.v.resize(Hkv * d);
  s.attn_flat.resize(H * d);
  s.o.resize(c.hidden_size);
  s.gate.resize(c.intermediate_size);
  s.up.resize(c.intermediate_size);

  for (int layer = 0; layer < c.num_layers; ++layer) {
    const LayerWeights& L = w_.layers[static_cast<std::size_t>(layer)];
    rms_norm(s.h.data(), L.input_norm, c.rms_norm_eps, s.xn.data());
    matvec(L.q_proj, s.xn.data(), s.q.data(), threads);
    matvec(L.k_proj, s.xn.data(), s.k.data(), threads);
    matvec(L.v_proj, s.xn.data(), s.v.data(), threads);
    if (L.q_bias.size()) add_bias(s.q.data(), L.q_bias);
    if (L.k_bias.size()) add_bias(s.k.data(), L.k_bias);
    if (L.v_bias.size()) add_bias(s.v.data(), L.v_bias);
    apply_rope(s.q.data(), H, t);
    apply_rope(s.k.data(), Hkv, t);

    for (int j = 0; j < Hkv; ++j) {
      Matrix& Q = s.group_q[static_cast<std::size_t>(j)];
      for (int a = 0; a < g; ++a) Q.row(a) = s.q.segment((j * g + a) * d, d);
    }
    // Append first (the new token attends to itself): each unit takes its heads.
    auto& units = units_[static_cast<std::size_t>(layer)];
    const int num_units = static_cast<int>(units.size());
    std::vector<std::exception_ptr> errors(static_cast<std::size_t>(Hkv));
    const int attn_threads = threads_for(static_cast<double>(t + 1) * d * H / 8, threads);
#pragma omp parallel for schedule(static) num_threads(attn_threads) if (attn_threads > 1 && num_units > 1)
    for (int u = 0; u < num_units; ++u) {
      try {
        LayerCacheState& unit = *units[static_cast<std::size_t>(u)];
        const int first = per_unit_first_head(u, num_units);
        std::vector<ConstRowRef> keys, values;
        std::vector<QueryGroup> queries;
        for (int j = first; j < first + unit.heads(); ++j) {
          keys.emplace_back(s.k.segment(j * d, d));
          values.emplace_back(s.v.segment(j * d, d));
          const Matrix& Q = s.group_q[static_cast<std::size_t>(j)];
          QueryGroup group;
          for (int a = 0; a < g; ++a) group.emplace_back(Q.row(a));
          queries.push_back(std::move(group));
        }
        unit.append(keys, values, queries);
      } catch (...) {
        errors[static_cast<std::size_t>(u)] = std::current_exception();
      }
    }
    for (const auto& e : errors)
      if (e) std::rethrow_exception(e);
#pragma omp parallel for schedule(static) num_threads(attn_threads) if (attn_threads > 1 && Hkv > 1)
    for (int j = 0; j < Hkv; ++j) {
      try {
        const CacheReader& state = *heads_[static_cast<std::size_t>(layer * Hkv + j)];
        const Matrix& Q = s.group_q[static_cast<std::size_t>(j)];
        const CacheView view = state.view();
        const int n = view.tokens();
        Matrix& logits = s.group_logits[static_cast<std::size_t>(j)];
        logits.resize(g, n);
        state.key_logits(Q, logits);
        std::vector<double>& p = s.probs[static_cast<std::size_t>(j)];
        const std::uint8_t* present = view.present ? view.present->data() : nullptr;
        for (int a = 0; a < g; ++a) {
          softmax(logits.row(a).data(), n, scale, present, p);
          std::vector<double> acc(static_cast<std::size_t>(d), 0.0);
          for (int i = 0; i < n; ++i) {
            const double pi = p[static_cast<std::size_t>(i)];
            if (pi == 0.0) continue;
            const float* vrow = view.values.row(i).data();
            for (int x = 0; x < d; ++x) acc[static_cast<std::size_t>(x)] += pi * vrow[x];
          }
          float* out = s.attn_flat.data() + static_cast<std::size_t>(j * g + a) * d;
          for (int x = 0; x < d; ++x) out[x] = static_cast<float>(acc[static_cast<std::size_t>(x)]);
        }
      } catch (...) {
        errors[static_cast<std::size_t>(j)] = std::current_exception();
      }
    }
    for (const auto& e : errors)
      if (e) std::rethrow_exception(e);
    Matrix& rec = attn_[static_cast<std::size_t>(layer)];
    for (int hq = 0; hq < H; ++hq) rec.row(hq) = s.attn_flat.segment(hq * d, d);

    matvec(L.o_proj, s.attn_flat.data(), s.o.data(), threads);
    s.h += s.o;
    rms_norm(s.h.data(), L.post_norm, c.rms_norm_eps, s.xn.data());
    matvec(L.gate_proj, s.xn.data(), s.gate.data(), threads);
    matvec(L.up_proj, s.xn.data(), s.up.data(), threads);
    for (int i = 0; i < c.intermediate_size; ++i) s.gate[i] = silu(s.gate[i]) * s.up[i];
    matvec(L.down_proj, s.gate.data(), s.o.data(), threads);
    s.h += s.o;
  }
  position_ = t + 1;
  finish(s.h);
}

}  // namespace kvlab
