// MiKV: the method against a plain reference (selection by accumulated
// attention in double, the channel balancer, demotion of the held row), exact
// bits after every step, no token evicted, and the balancer's purpose.
#include <catch2/catch.hpp>

#include <cmath>

#include "kvlab/compressors/registry.hpp"
#include "kvlab/core/fp16.hpp"
#include "kvlab/io/synth.hpp"
#include "kvlab/quant/group_quantizer.hpp"
#include "test_support.hpp"

using namespace kvlab;
using test::random_matrix;

namespace {

struct RefConfig {
  int heavy = 5, recent = 4, high_bits = 16, low_bits = 2, group = 0;
  bool balance = true;
};

// A plain reference of MiKV (docs/methods/mikv.md), token by token.
struct RefMikv {
  RefConfig c;
  int d;
  Matrix k, v;  // held rows
  std::vector<double> score;
  std::vector<int> high;
  RowVector bal;

  RefMikv(RefConfig cfg, int dim, int cap) : c(cfg), d(dim), k(cap, dim), v(cap, dim), bal(RowVector::Ones(dim)) {}

  void store(int i, RowVector key, RowVector value, int bits) {
    if (bits == 16) {
      k.row(i) = key;
      v.row(i) = value;
      return;
    }
    const QuantConfig q{bits, QuantAxis::PerToken, c.group};
    RowVector kb(d), kq(d), vq(d);
    for (int j = 0; j < d; ++j) kb[j] = key[j] * bal[j];
    fake_quantize(kb, q, kq);
    for (int j = 0; j < d; ++j) k(i, j) = kq[j] / bal[j];
    fake_quantize(value, q, vq);
    v.row(i) = vq;
  }
  // Query rows at positions first.. attend causally over held keys; softmax in double.
  void attend(const std::vector<Matrix>& q, int first, int rows) {
    for (const Matrix& qh : q)
      for (int r = 0; r < rows; ++r) {
        const int pos = first + r, vis = pos + 1;
        std::vector<double> l(vis);
        double mx = -INFINITY, sum = 0;
        for (int j = 0; j < vis; ++j) {
          double dot = 0;
          for (int c2 = 0; c2 < d; ++c2) dot += double(qh(r, c2)) * k(j, c2);
          l[j] = dot / std::sqrt(double(d));
          mx = std::max(mx, l[j]);
        }
        for (int j = 0; j < vis; ++j) sum += (l[j] = std::exp(l[j] - mx));
        for (int j = 0; j < vis; ++j) score[j] += l[j] / sum;
      }
  }
  void demote(int i) {
    store(i, k.row(i), v.row(i), c.low_bits);
    high[i] = 0;
  }
  int high_count() const { return static_cast<int>(std::count(high.begin(), high.end(), 1)); }

  void prefill(const Matrix& keys, const Matrix& values, const std::vector<Matrix>& q) {
    const int p = static_cast<int>(keys.rows());
    if (c.balance)
      for (int j = 0; j < d; ++j) {
        double qm = 0, km = 0;
        for (const Matrix& qh : q) qm = std::max(qm, double(qh.col(j).cwiseAbs().maxCoeff()));
        km = keys.col(j).cwiseAbs().maxCoeff();
        bal[j] = (qm > 0 && km > 0) ? round_to_fp16(float(std::sqrt(qm / km))) : 1.0f;
      }
    score.assign(k.rows(), 0.0);
    high.assign(k.rows(), 0);
    for (int i = 0; i < p; ++i) {
      store(i, keys.row(i), values.row(i), c.high_bits);
      high[i] = 1;
    }
    attend(q, 0, p);
    if (p <= c.heavy + c.recent) return;
    // Keep the `heavy` best older tokens (ties: lower position), demote the rest.
    std::vector<int> older;
    for (int i = 0; i < p - c.recent; ++i) older.push_back(i);
    std::stable_sort(older.begin(), older.end(), [&](int a, int b) { return score[a] > score[b]; });
    for (std::size_t r = c.heavy; r < older.size(); ++r) demote(older[r]);
  }
  void append(int t, RowVector key, RowVector value, const std::vector<Matrix>& q) {
    store(t, key, value, c.high_bits);
    high[t] = 1;
    attend(q, t, 1);
    while (high_count() > c.heavy + c.recent) {
      int victim = -1;
      for (int i = 0; i <= t - c.recent; ++i)
        if (high[i] && (victim < 0 || score[i] <= score[victim])) victim = i;
      demote(victim);
    }
  }
  std::uint64_t bits(int t) const {
    auto tok = [&](int b) -> std::uint64_t {
      if (b == 16) return 2ULL * 16 * d;
      const std::uint64_t groups = c.group == 0 ? 1 : (d + c.group - 1) / c.group;
      return 2ULL * (b * d + 32 * groups);
    };
    const std::uint64_t h = high_count();
    std::uint64_t b = h * tok(c.high_bits) + (t - h) * tok(c.low_bits) + (c.balance ? 16ULL * d : 0);
    if (h != std::uint64_t(t)) b += std::min<std::uint64_t>(t, 32 * h);
    return b;
  }
};

std::vector<Matrix> rows_of(const std::vector<Matrix>& q, int first, int n) {
  std::vector<Matrix> out;
  for (const Matrix& m : q) out.push_back(m.middleRows(first, n));
  return out;
}
QueryGroup group_of(const std::vector<Matrix>& q) {
  QueryGroup g;
  for (const Matrix& m : q) g.emplace_back(m);
  return g;
}

}  // namespace

TEST_CASE("mikv matches the plain reference step by step", "[mikv]") {
  const int d = 16, p = 40, total = 70;
  Rng rng(77);
  Matrix k = random_matrix(total, d, rng), v = random_matrix(total, d, rng);
  k.col(3) *= 8.0f;  // an outlier key channel for the balancer to act on
  const std::vector<Matrix> q{random_matrix(total, d, rng), random_matrix(total, d, rng)};
  for (RefConfig rc : {RefConfig{}, RefConfig{5, 4, 16, 2, 8, false}, RefConfig{3, 6, 8, 3, 0, true},
                       RefConfig{2, 1, 4, 1, 4, true}}) {
    INFO("heavy " << rc.heavy << " recent " << rc.recent << " high " << rc.high_bits << " low " << rc.low_bits
                  << " group " << rc.group << " balance " << rc.balance);
    const auto c = Registry::global().build(
        fmt::format("mikv:heavy_tokens={},recent_tokens={},high_bits={},low_bits={},group={},balance={}", rc.heavy,
                    rc.recent, rc.high_bits, rc.low_bits, rc.group, rc.balance));
    CHECK(c->needs_queries());
    auto st = c->new_state(test::block_context(d, total, p));
    RefMikv ref(rc, d, total);
    const std::vector<Matrix> qp = rows_of(q, 0, p);
    st->prefill(k.topRows(p), v.topRows(p), group_of(qp));
    ref.prefill(k.topRows(p), v.topRows(p), qp);
    for (int t = p;; ++t) {
      const CacheView view = st->view();
      REQUIRE(view.present == nullptr);  // no token left behind
      REQUIRE(view.keys == ref.k.topRows(t));
      REQUIRE(view.values == ref.v.topRows(t));
      REQUIRE(st->bits().total() == ref.bits(t));
      if (t == total) break;
      const std::vector<Matrix> qt = rows_of(q, t, 1);
      st->append(k.row(t), v.row(t), group_of(qt));
      ref.append(t, k.row(t), v.row(t), qt);
    }
    CHECK(ref.high_count() == rc.heavy + rc.recent);
  }
}

TEST_CASE("mikv: errors, budgets and the balancer's purpose", "[mikv]") {
  CHECK_THROWS_WITH(Registry::global().build("mikv:high_bits=4,low_bits=4"), Catch::Contains("must be below"));
  auto st = Registry::global().build("mikv")->new_state(test::block_context(8, 4, 4));
  const Matrix x = random_matrix(4, 8, 1);
  CHECK_THROWS_WITH(st->prefill(x, x, {}), Catch::Contains("needs queries"));

  // Synthetic keys with outlier channels: balancing lowers the low-precision key error.
  SynthOptions o;
  o.preset = "small";
  o.outlier_channels = 2;
  o.outlier_scale = 8.0f;
  const SynthOptions r = resolve_synth_options(o);
  const LayerData layer = synth_layer(r, 1, 1);
  const int g = r.num_heads / r.num_kv_heads;
  auto key_error = [&](const char* spec) {
    double err = 0, ref = 0;
    const auto c = Registry::global().build(spec);
    for (int h = 0; h < r.num_kv_heads; ++h) {
      auto s = c->new_state(test::block_context(r.head_dim, r.seq_len, r.prompt_len));
      QueryGroup q;
      for (int j = 0; j < g; ++j) q.emplace_back(layer.queries[h * g + j].topRows(r.prompt_len));
      s->prefill(layer.keys[h].topRows(r.prompt_len), layer.values[h].topRows(r.prompt_len), q);
      err += (s->view().keys - layer.keys[h].topRows(r.prompt_len)).squaredNorm();
      ref += layer.keys[h].topRows(r.prompt_len).squaredNorm();
    }
    return std::sqrt(err / ref);
  };
  const double balanced = key_error("mikv:low_bits=2,balance=true"), plain = key_error("mikv:low_bits=2,balance=false");
  INFO("balanced " << balanced << " plain " << plain);
  CHECK(balanced < plain);
}
