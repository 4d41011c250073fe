// The attention-score accumulator: causal softmax sums, present mask, GQA.
#include <catch2/catch.hpp>
#include <cmath>

#include "kvlab/core/rng.hpp"
#include "kvlab/attention/scores.hpp"

using namespace kvlab;

namespace {

Matrix random_matrix(int rows, int cols, std::uint64_t seed, double scale = 1.0) {
  Rng rng(seed);
  Matrix m(rows, cols);
  for (int i = 0; i < rows; ++i)
    for (int j = 0; j < cols; ++j) m(i, j) = static_cast<float>(scale * rng.normal());
  return m;
}

// Plain reference: row r at position first + r, softmax over present j ≤ position.
std::vector<double> naive(const std::vector<Matrix>& heads, int first, const Matrix& k, const PresentMask* present) {
  const int n = static_cast<int>(k.rows());
  std::vector<double> s(n, 0.0);
  for (const Matrix& q : heads)
    for (int r = 0; r < q.rows(); ++r) {
      const int pos = first + r;
      std::vector<double> e(n, 0.0);
      double sum = 0;
      for (int j = 0; j <= pos; ++j) {
        if (present && !(*present)[j]) continue;
        double dot = 0;
        for (int c = 0; c < k.cols(); ++c) dot += double(q(r, c)) * k(j, c);
        e[j] = std::exp(dot / std::sqrt(double(k.cols())));
        sum += e[j];
      }
      for (int j = 0; j <= pos; ++j) s[j] += e[j] / sum;
    }
  return s;
}

std::vector<ConstMatrixRef> group_of(const std::vector<Matrix>& heads) {
  std::vector<ConstMatrixRef> g;
  for (const Matrix& h : heads) g.emplace_back(h);
  return g;
}

}  // namespace

TEST_CASE("attention scores: causal prefill matches the plain reference and sums to the query count",
          "[attention_scores]") {
  const int n = 300, d = 16;  // > one 128-row chunk
  const Matrix k = random_matrix(n, d, 1);
  const std::vector<Matrix> heads{random_matrix(n, d, 2), random_matrix(n, d, 3)};
  const std::vector<double> got = attention_scores(group_of(heads), 0, k);
  const std::vector<double> ref = naive(heads, 0, k, nullptr);
  double total = 0;
  for (int j = 0; j < n; ++j) {
    REQUIRE(got[j] == Approx(ref[j]).epsilon(1e-5).margin(1e-9));
    total += got[j];
  }
  CHECK(total == Approx(2.0 * n));
  // Position n-1 is seen only by the last query of each head.
  CHECK(got[n - 1] == Approx(ref[n - 1]));
}

TEST_CASE("attention scores: a window of queries, a present mask, and GQA summing", "[attention_scores]") {
  const int n = 40, d = 8, w = 5;
  const Matrix k = random_matrix(n, d, 4);
  const std::vector<Matrix> heads{random_matrix(w, d, 5), random_matrix(w, d, 6), random_matrix(w, d, 7)};
  PresentMask present(n, 1);
  for (int j = 0; j < n; j += 3) present[j] = 0;
  const std::vector<double> got = attention_scores(group_of(heads), n - w, k, present.data());
  const std::vector<double> ref = naive(heads, n - w, k, &present);
  std::vector<double> per_head(n, 0.0);
  for (const Matrix& h : heads) {
    const std::vector<double> one = attention_scores(group_of({h}), n - w, k, present.data());
    for (int j = 0; j < n; ++j) per_head[j] += one[j];
  }
  double total = 0;
  for (int j = 0; j < n; ++j) {
    REQUIRE(got[j] == Approx(ref[j]).epsilon(1e-5).margin(1e-9));
    REQUIRE(got[j] == Approx(per_head[j]).epsilon(1e-9).margin(1e-12));
    if (!present[j]) REQUIRE(got[j] == 0.0);
    total += got[j];
  }
  CHECK(total == Approx(3.0 * w));
}

TEST_CASE("attention scores accumulate into an existing vector", "[attention_scores]") {
  const int n = 10, d = 4;
  const Matrix k = random_matrix(n, d, 8);
  const Matrix q = random_matrix(1, d, 9);
  std::vector<double> s(n, 1.0);
  accumulate_attention_scores(group_of({q}), n - 1, k, nullptr, s);
  double total = 0;
  for (double x : s) total += x;
  CHECK(total == Approx(n + 1.0));
}
