#include <algorithm>
#include <catch2/catch.hpp>
#include <numeric>

#include "kvlab/core/fp16.hpp"
#include "kvlab/core/rng.hpp"
#include "kvlab/quant/outliers.hpp"

using namespace kvlab;

namespace {
Matrix random_matrix(int n, int d, std::uint64_t seed, bool ties = false) {
  Rng rng(seed);
  Matrix x(n, d);
  for (int r = 0; r < n; ++r)
    for (int c = 0; c < d; ++c) x(r, c) = ties ? static_cast<float>(rng.below(5)) : static_cast<float>(rng.normal());
  return x;
}

// Plain reference: sort each vector by (value, position), mark first k and last k.
ElementMask reference_mask(const Matrix& x, bool per_token, int k) {
  ElementMask m = ElementMask::Zero(x.rows(), x.cols());
  const int vecs = static_cast<int>(per_token ? x.rows() : x.cols()), len = static_cast<int>(per_token ? x.cols() : x.rows());
  for (int v = 0; v < vecs; ++v) {
    auto at = [&](int i) { return per_token ? x(v, i) : x(i, v); };
    std::vector<int> idx(len);
    std::iota(idx.begin(), idx.end(), 0);
    std::sort(idx.begin(), idx.end(), [&](int a, int b) { return at(a) < at(b) || (at(a) == at(b) && a < b); });
    for (int j = 0; j < len; ++j)
      if (j < k || j >= len - k) (per_token ? m(v, idx[j]) : m(idx[j], v)) = 1;
  }
  return m;
}
}  // namespace

TEST_CASE("outliers: exactly the k largest and k smallest per vector", "[outliers]") {
  for (bool ties : {false, true})
    for (auto axis : {QuantAxis::PerToken, QuantAxis::PerChannel})
      for (double s : {0.02, 0.1, 0.3}) {
        const Matrix x = random_matrix(200, 64, 7 + static_cast<int>(s * 100), ties);
        const OutlierConfig cfg{axis, s, -1};
        const bool pt = axis == QuantAxis::PerToken;
        const int m = pt ? 64 : 200;
        const int k = static_cast<int>(std::floor(s * m / 2));
        REQUIRE(outlier_count_per_side(cfg, m) == k);
        const OutlierSet o = extract_outliers(x, cfg);
        const ElementMask ref = reference_mask(x, pt, k);
        CHECK((o.mask.array() == ref.array()).all());
        CHECK(o.entries.size() == static_cast<std::size_t>(2 * k) * (pt ? 200 : 64));
        CHECK(o.bits() == 48ULL * o.entries.size());
        for (const auto& e : o.entries) CHECK(e.value == round_to_fp16(x(e.row, e.col)));
      }
}

TEST_CASE("outliers: explicit count override and whole-vector case", "[outliers]") {
  const Matrix x = random_matrix(50, 16, 3);
  const OutlierSet o = extract_outliers(x, OutlierConfig{QuantAxis::PerChannel, 0.0, 3});
  CHECK((o.mask.array() == reference_mask(x, false, 3).array()).all());
  const OutlierSet all = extract_outliers(x, OutlierConfig{QuantAxis::PerToken, 0.0, 8});  // 2k >= 16
  CHECK(all.entries.size() == 50u * 16u);
  const OutlierSet none = extract_outliers(x, OutlierConfig{QuantAxis::PerToken, 0.01, -1});  // ⌊0.08⌋ = 0
  CHECK(none.entries.empty());
}

TEST_CASE("outliers: long columns (sample-primed thresholds) match the reference exactly", "[outliers]") {
  // Long enough that per-channel selection primes its thresholds from a
  // sample; ties and a column with all-equal values force the exact rescan.
  for (bool ties : {false, true}) {
    Matrix x = random_matrix(2048, 16, 99, ties);
    x.col(3).setConstant(1.5f);
    x.col(7).head(1024).setConstant(-9.0f);  // many equal minima
    for (double s : {0.004, 0.02, 0.1}) {
      const OutlierConfig cfg{QuantAxis::PerChannel, s, -1};
      const int k = outlier_count_per_side(cfg, 2048);
      const OutlierSet o = extract_outliers(x, cfg);
      CHECK((o.mask.array() == reference_mask(x, false, k).array()).all());
      CHECK(o.entries.size() == static_cast<std::size_t>(2 * k) * 16);
    }
  }
}

TEST_CASE("outliers: one per side per token (the GEAR default) matches the reference with ties", "[outliers]") {
  for (bool ties : {false, true}) {
    Matrix x = random_matrix(300, 128, 5, ties);
    x.row(7).setConstant(2.0f);  // every entry ties
    const OutlierConfig by_count{QuantAxis::PerToken, 0.0, 1};
    const OutlierConfig by_sparsity{QuantAxis::PerToken, 0.02, -1};  // ⌊0.02·128/2⌋ = 1
    REQUIRE(outlier_count_per_side(by_sparsity, 128) == 1);
    for (const auto& cfg : {by_count, by_sparsity}) {
      const OutlierSet o = extract_outliers(x, cfg);
      CHECK((o.mask.array() == reference_mask(x, true, 1).array()).all());
      CHECK(o.entries.size() == 2u * 300u);
    }
  }
}

TEST_CASE("outliers: vector tails, long rows of words and misleading samples match the reference", "[outliers]") {
  // Column counts around the 8-lane and 64-column word boundaries.
  for (int d : {1, 7, 13, 64, 70, 130}) {
    Matrix x = random_matrix(1200, d, static_cast<std::uint64_t>(d), false);
    for (auto axis : {QuantAxis::PerToken, QuantAxis::PerChannel})
      for (double s : {0.02, 0.05}) {
        const OutlierConfig cfg{axis, s, -1};
        const bool pt = axis == QuantAxis::PerToken;
        const int k = outlier_count_per_side(cfg, pt ? d : 1200);
        INFO("d " << d << " axis " << to_string(axis) << " s " << s << " k " << k);
        const OutlierSet o = extract_outliers(x, cfg);
        CHECK((o.mask.array() == reference_mask(x, pt, k).array()).all());
      }
  }
  // Samples (every 16th row) that mislead the per-channel thresholds: column 0
  // samples the maxima only (far too many entries fall below the sampled low
  // threshold), column 1 samples the minima (too few fall below it), column 2
  // ties everywhere outside the samples.
  Matrix x = random_matrix(4096, 9, 77, false);
  for (int r = 0; r < 4096; ++r) {
    const bool sampled = r % 16 == 0;
    x(r, 0) = sampled ? 5.0f : -1.0f - 0.001f * static_cast<float>(r % 7);
    x(r, 1) = sampled ? -5.0f - static_cast<float>(r) : x(r, 1);
    x(r, 2) = sampled ? x(r, 2) : 0.5f;
  }
  for (double s : {0.004, 0.02}) {
    const OutlierConfig cfg{QuantAxis::PerChannel, s, -1};
    const int k = outlier_count_per_side(cfg, 4096);
    const OutlierSet o = extract_outliers(x, cfg);
    CHECK((o.mask.array() == reference_mask(x, false, k).array()).all());
    for (const auto& e : o.entries) CHECK(e.value == round_to_fp16(x(e.row, e.col)));
  }
}

TEST_CASE("outliers: a strided view selects like its copy", "[outliers]") {
  const Matrix wide = random_matrix(2048, 40, 8, true);
  for (auto axis : {QuantAxis::PerToken, QuantAxis::PerChannel}) {
    const OutlierConfig cfg{axis, 0.05, -1};
    const OutlierSet a = extract_outliers(wide.middleCols(3, 21), cfg);
    const OutlierSet b = extract_outliers(Matrix(wide.middleCols(3, 21)), cfg);
    CHECK((a.mask.array() == b.mask.array()).all());
    CHECK(a.entries.size() == b.entries.size());
  }
}
