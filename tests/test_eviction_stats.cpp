// Droppers scored from running statistics: expected-attention (query mean and
// covariance, RoPE averaged over future positions) and leverage, each against
// a plain reference written from docs/methods/eviction.md.
#include <catch2/catch.hpp>

#include <Eigen/Dense>

#include "eviction_support.hpp"
#include "kvlab/compressors/expected_attention.hpp"
#include "kvlab/compressors/scored_dropper.hpp"

using namespace kvlab;
using namespace kvlab::test;

namespace {

// (a, b) pairs of RoPE: neox (i, i + d/2), gptj (2i, 2i + 1); angle p·θ_i.
void ref_rotate(Eigen::VectorXd& x, const RopeInfo& rope, double pos, bool inverse) {
  const int d = static_cast<int>(x.size());
  for (int i = 0; i < d / 2; ++i) {
    const int a = rope.style == RopeStyle::Gptj ? 2 * i : i, b = rope.style == RopeStyle::Gptj ? 2 * i + 1 : i + d / 2;
    const double ang = (inverse ? -1 : 1) * pos * std::pow(rope.theta, -2.0 * i / d);
    const double xa = x[a], xb = x[b];
    x[a] = xa * std::cos(ang) - xb * std::sin(ang);
    x[b] = xb * std::cos(ang) + xa * std::sin(ang);
  }
}

// Mean of the rotation matrices R(p), p in [first, first + count), summed directly.
Eigen::MatrixXd ref_mean_rotation(const RopeInfo& rope, int d, int first, int count) {
  Eigen::MatrixXd sum = Eigen::MatrixXd::Zero(d, d);
  for (int p = first; p < first + count; ++p)
    for (int c = 0; c < d; ++c) {
      Eigen::VectorXd e = Eigen::VectorXd::Unit(d, c);
      ref_rotate(e, rope, p, false);
      sum.col(c) += e;
    }
  return sum / count;
}

struct RefEa {
  const EvBlock& b;
  RopeInfo rope;
  int sinks, future;
  bool covariance, vnorm;
  int window = 0;  // the layer's sliding window (0: none)

  // Scores over positions [0, n) with the queries of positions [sinks, n) in
  // the statistics and future positions from n.
  std::vector<double> scores(int n, const std::vector<char>& present) const {
    const int d = static_cast<int>(b.k.cols());
    const Eigen::MatrixXd r = ref_mean_rotation(rope, d, n, future);
    std::vector<double> acc(n, 0.0);
    for (const Matrix& q : b.q) {
      Eigen::VectorXd mu = Eigen::VectorXd::Zero(d);
      Eigen::MatrixXd cov = Eigen::MatrixXd::Zero(d, d);
      std::vector<Eigen::VectorXd> pre;
      for (int i = sinks; i < n; ++i) {
        Eigen::VectorXd x = q.row(i).transpose().cast<double>();
        ref_rotate(x, rope, i, true);
        pre.push_back(x);
        mu += x;
      }
      if (!pre.empty()) mu /= double(pre.size());
      for (const auto& x : pre) cov += (x - mu) * (x - mu).transpose();
      if (!pre.empty()) cov /= double(pre.size());
      const Eigen::VectorXd mb = r * mu;
      const Eigen::MatrixXd cb = r * cov * r.transpose();
      std::vector<double> z(n, -INFINITY);
      double mx = -INFINITY;
      for (int j = sinks; j < n; ++j) {
        if (!present[j]) continue;
        const Eigen::VectorXd k = b.k.row(j).transpose().cast<double>();
        z[j] = mb.dot(k) / std::sqrt(double(d)) + (covariance ? k.dot(cb * k) / (2.0 * d) : 0.0);
        mx = std::max(mx, z[j]);
      }
      double sum = 0;
      for (int j = sinks; j < n; ++j)
        if (present[j]) sum += std::exp(z[j] - mx);
      for (int j = sinks; j < n; ++j)
        if (present[j]) acc[j] += std::exp(z[j] - mx) / sum / double(b.q.size());
    }
    for (int j = 0; j < n; ++j) {
      if (j < sinks) {
        acc[j] = INFINITY;
        continue;
      }
      if (vnorm) acc[j] *= b.v.row(j).cast<double>().norm();
      if (window > 0) {  // future queries p in [n, n + future) that still see j: p < j + window
        int seen = 0;
        for (int q = n; q < n + future; ++q) seen += q < j + window ? 1 : 0;
        acc[j] *= double(seen) / future;
      }
    }
    return acc;
  }
};

}  // namespace

TEST_CASE("the averaged RoPE rotation matches a direct sum", "[eviction][expected-attention]") {
  for (const RopeStyle style : {RopeStyle::Neox, RopeStyle::Gptj}) {
    const RopeInfo rope{10000.0, style};
    for (const auto& [first, count] : std::vector<std::pair<int, int>>{{0, 1}, {7, 5}, {384, 512}}) {
      const MatrixD got = mean_rope_rotation(rope, 16, first, count);
      const Eigen::MatrixXd want = ref_mean_rotation(rope, 16, first, count);
      CHECK((Eigen::MatrixXd(got) - want).cwiseAbs().maxCoeff() < 1e-10);
    }
  }
  CHECK(mean_rope_rotation(RopeInfo{10000.0, RopeStyle::None}, 8, 3, 9) == MatrixD::Identity(8, 8));
  // One future position is that position's rotation: orthogonal.
  const MatrixD one = mean_rope_rotation(RopeInfo{500.0, RopeStyle::Neox}, 8, 11, 1);
  CHECK((one * one.transpose() - MatrixD::Identity(8, 8)).cwiseAbs().maxCoeff() < 1e-12);
}

TEST_CASE("expected-attention matches a plain reference (GQA group of 2, both modes)",
          "[eviction][expected-attention]") {
  const int d = 8, p = 48, total = 80;
  EvBlock b = random_ev_block(total, d, 2, 31);
  for (Matrix& q : b.q)
    for (int i = 0; i < total; ++i) q(i, 1) += 1.5f;  // a query mean for the statistics to find
  for (const RopeStyle style : {RopeStyle::Neox, RopeStyle::Gptj}) {
    for (const auto& [covariance, vnorm] : std::vector<std::pair<bool, bool>>{{true, true}, {false, false}}) {
      for (const bool decode : {false, true}) {
        for (const int window : {0, 30}) {  // 30: keys 10+ positions behind n have left, the next 20 fade
          INFO("style " << to_string(style) << " covariance " << covariance << " decode " << decode << " window "
                        << window);
          BlockContext ctx = ev_context(d, p, total, 2);
          ctx.rope = RopeInfo{100.0, style};
          ctx.attention.window = window;
          const RefEa ea{b, *ctx.rope, 3, 20, covariance, vnorm, window};
          RefScoredDropper ref;
          ref.budget = 12;  // floor(0.25 · 48)
          ref.recent = decode ? 3 : 1;
          ref.decode = decode;
          ref.prompt_scores = [&](int n) { return ea.scores(n, std::vector<char>(n, 1)); };
          ref.decode_scores = [&](int t, const std::vector<char>& pr) { return ea.scores(t + 1, pr); };
          std::string spec = std::string("expected-attention:keep=0.25,sinks=3,future=20,covariance=") +
                             (covariance ? "true" : "false") + ",vnorm=" + (vnorm ? "true" : "false");
          if (decode) spec += ",mode=decode,recent=0.25";
          require_matches_reference(spec, ctx, b, ref);
        }
      }
    }
  }
}

TEST_CASE("expected-attention keeps the keys aligned with the future queries' mean", "[eviction][expected-attention]") {
  // Without RoPE the statistics are the queries' own: keys along the query
  // mean get the largest expected attention.
  const int d = 8, p = 40;
  Rng rng(8);
  EvBlock b{random_matrix(p, d, rng, 0.2), Matrix::Ones(p, d), {random_matrix(p, d, rng, 0.2)}};
  for (int i = 0; i < p; ++i) b.q[0](i, 2) += 2.0f;
  const std::set<int> aligned{9, 17, 26};
  for (int i : aligned) b.k(i, 2) = 3.0f;
  BlockContext ctx = ev_context(d, p, p);
  ctx.rope = RopeInfo{10000.0, RopeStyle::None};
  auto s = ev_state("expected-attention:keep_tokens=5,sinks=2", ctx);
  s->prefill(b.k, b.v, ev_rows(b, 0, p));
  std::set<int> want = aligned;
  want.insert({0, 1});  // sinks
  CHECK(present_set(*s) == want);
  CHECK(Registry::global().build("expected-attention")->needs_rope());
}

namespace {

// Leverage of every row of X − mean over the rows given, exact (no sketch):
// diag(Xc (XcᵀXc + λI)⁻¹ Xcᵀ), λ = 1e-9·trace/d, keys before RoPE.
struct RefLeverage {
  const EvBlock& b;
  RopeInfo rope;

  Eigen::VectorXd pre(int i) const {
    Eigen::VectorXd x = b.k.row(i).transpose().cast<double>();
    ref_rotate(x, rope, i, true);
    return x;
  }
  // Statistics over positions [0, seen); scores for present rows of [0, n).
  std::vector<double> scores(int seen, int n, const std::vector<char>& present) const {
    const int d = static_cast<int>(b.k.cols());
    Eigen::VectorXd mu = Eigen::VectorXd::Zero(d);
    for (int i = 0; i < seen; ++i) mu += pre(i);
    mu /= seen;
    Eigen::MatrixXd c = Eigen::MatrixXd::Zero(d, d);
    for (int i = 0; i < seen; ++i) c += (pre(i) - mu) * (pre(i) - mu).transpose();
    const Eigen::MatrixXd inv = (c + 1e-9 * c.trace() / d * Eigen::MatrixXd::Identity(d, d)).inverse();
    std::vector<double> s(n, 0.0);
    for (int i = 0; i < n; ++i)
      if (present[i]) s[i] = (pre(i) - mu).dot(inv * (pre(i) - mu));
    return s;
  }
};

}  // namespace

TEST_CASE("leverage matches a plain reference in both modes", "[eviction][leverage]") {
  const int d = 6, p = 50, total = 80;
  const EvBlock b = random_ev_block(total, d, 1, 17);
  for (const bool decode : {false, true}) {
    const BlockContext ctx = ev_context(d, p, total);
    const RefLeverage lev{b, *ctx.rope};
    RefScoredDropper ref;
    ref.budget = 15;  // floor(0.3 · 50)
    ref.decode = decode;
    ref.prompt_scores = [&](int n) { return lev.scores(n, n, std::vector<char>(n, 1)); };
    ref.decode_scores = [&](int t, const std::vector<char>& pr) { return lev.scores(t + 1, t + 1, pr); };
    require_matches_reference(decode ? "leverage:keep=0.3,mode=decode" : "leverage:keep=0.3", ctx, b, ref);
  }
}

TEST_CASE("leverage keeps geometric outliers; the sketch is seeded and approximates", "[eviction][leverage]") {
  const int d = 16, p = 200;
  Rng rng(6);
  EvBlock b{random_matrix(p, d, rng), random_matrix(p, d, rng), {}};
  const std::set<int> outliers{13, 77, 150};
  for (int i : outliers) b.k.row(i) *= 8.0f;
  BlockContext ctx = ev_context(d, p, p);
  ctx.rope = RopeInfo{10000.0, RopeStyle::None};
  for (const std::string spec : {"leverage:keep_tokens=3", "leverage:keep_tokens=3,sketch=12"}) {
    auto s = ev_state(spec, ctx);
    s->prefill(b.k, b.v, {});
    CHECK(present_set(*s) == outliers);
  }
  // A sketch as wide as d with Gaussian entries spans the key space: leverage is
  // invariant to an invertible right factor, so the kept set equals the exact one.
  auto exact = ev_state("leverage:keep_tokens=40", ctx), wide = ev_state("leverage:keep_tokens=40,sketch=16", ctx);
  exact->prefill(b.k, b.v, {});
  wide->prefill(b.k, b.v, {});
  CHECK(present_set(*exact) == present_set(*wide));
  // Different seeds give different narrow sketches.
  BlockContext other = ctx;
  other.seed = 1234;
  auto n1 = ev_state("leverage:keep_tokens=60,sketch=4", ctx), n2 = ev_state("leverage:keep_tokens=60,sketch=4", other);
  n1->prefill(b.k, b.v, {});
  n2->prefill(b.k, b.v, {});
  CHECK(present_set(*n1) != present_set(*n2));
}
